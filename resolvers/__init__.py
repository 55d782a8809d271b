"""Strawberry types and resolvers: thin, they call into gateway/ for every rule."""
