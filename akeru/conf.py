"""Moved to akeru.settings (akeru.settings.declarations and akeru.settings.accessor); re-exported
here for one release (removed in 0.3).

``DEFAULTS``, ``REQUIRED``, ``PARTITION_ENDPOINTS`` and the trust documents come from the pure
declarations; ``akeru_settings`` and ``result_expires`` from the accessor. Migrations import
``akeru_settings`` from here: switch them with the lead's import sweep before this shim goes.
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
