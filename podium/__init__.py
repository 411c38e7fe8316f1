"""Podium: a microservice orchestration engine in the line of Netflix Conductor."""

__version__ = "0.1.0"
