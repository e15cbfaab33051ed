"""Moved to akeru.settings (akeru.settings.declarations and akeru.settings.accessor); re-exported
here for one release (removed in 0.3).

``DEFAULTS``, ``REQUIRED``, ``PARTITION_ENDPOINTS`` and the trust documents come from the pure
declarations; ``akeru_settings`` and ``result_expires`` from the accessor. Nothing of Akeru's imports
this module any more (the migrations read ``akeru.settings.accessor``); it stays for code outside Akeru.
"""

from akeru.settings.accessor import AkeruSettings, _as_bool, _as_list, akeru_settings, result_expires
from akeru.settings.declarations import DEFAULTS, EC2_TRUST, LAMBDA_TRUST, PARTITION_ENDPOINTS, REQUIRED

__all__ = [
    "DEFAULTS",
    "EC2_TRUST",
    "LAMBDA_TRUST",
    "PARTITION_ENDPOINTS",
    "REQUIRED",
    "AkeruSettings",
    "_as_bool",
    "_as_list",
    "akeru_settings",
    "result_expires",
]
