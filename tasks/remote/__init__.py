"""Programs sent to the server and run there; each file is standalone."""
