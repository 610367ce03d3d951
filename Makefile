# The two commands of the README: `make up` (a real `pulumi up` of the dev stack) and `make test`.
.PHONY: up test

up:
	scripts/up.sh dev

test:
	scripts/test.sh
