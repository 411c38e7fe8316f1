"""The sharded Redis delay-queue service."""
