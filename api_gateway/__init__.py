"""The api_gateway service."""
