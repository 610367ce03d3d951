"""Release decisions behind the `release` command: status rows, the canary schedule and the error-rate gate."""
