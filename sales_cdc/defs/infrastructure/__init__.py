"""Provisioning and teardown of the whole AWS stack."""
