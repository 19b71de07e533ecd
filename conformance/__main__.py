"""python -m conformance: the same as the `fhir-conformance` command."""

import sys

from conformance.cli import main

sys.exit(main())
