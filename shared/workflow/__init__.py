"""The workflow shell and the settings: gathers facts through the adapters, asks the core, acts."""
