"""The one error type of the HL7 v2 adapter: everything the ACK's MSA and ERR segments need."""

from __future__ import annotations


class Hl7Error(Exception):
    """A message the adapter refuses (AR) or cannot apply (AE).

    `code` is an HL7 table 0357 code, `location` an ERR-2 location (segment^sequence^field).
    """

    def __init__(self, ack_code: str, code: str, message: str, location: str = "") -> None:
        super().__init__(message)
        self.ack_code = ack_code
        self.code = code
        self.message = message
        self.location = location
