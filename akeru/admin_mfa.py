"""Moved to akeru.admin.mfa; re-exported here for one release (removed in 0.3)."""

from .admin.mfa import MFADeviceAdmin, OtpTOTPDevice

__all__ = ["MFADeviceAdmin", "OtpTOTPDevice"]
