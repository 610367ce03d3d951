"""Entry point that Pulumi runs for every stack (Pulumi.yaml: main: infra/)."""

from infra.program import main

main()
