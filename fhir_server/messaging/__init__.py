"""Secure messaging between a patient and their professionals (issue 15): threads of Communications."""
