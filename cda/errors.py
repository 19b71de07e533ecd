"""The one error type of the CDA toolkit; the HTTP layer maps its code to 400/422."""

from typing import Literal

CdaErrorCode = Literal["invalid-xml", "forbidden-xml", "too-large", "not-cda", "no-patient"]


class CdaError(Exception):
    """A document that cannot be converted, with a stable machine-readable code."""

    def __init__(self, code: CdaErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: CdaErrorCode = code
        self.message = message
