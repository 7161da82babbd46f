"""Functions, versions, aliases and code packages: the models and their rules."""
