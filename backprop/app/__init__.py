"""The application: config loading and checks, the TOML writer, plugin imports, the experiment
(config -> data, backend, fit), the run directory and the command line (`backprop ...`)."""
