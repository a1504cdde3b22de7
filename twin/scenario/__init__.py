"""What a scenario may say and reading it: the schema, the loader, overrides and scaling."""
