"""Loading a config file by path, overriding its fields, and checking its values at start-up."""
