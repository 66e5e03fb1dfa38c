"""The on-disk contracts (Arrow schemas, manifest JSON Schema, vocabulary), shipped as package data."""
