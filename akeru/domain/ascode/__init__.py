"""Access as code: the ``akeru/v1`` file format (``schema``), reading files (``reader``, YAML 1.2 with
lines), writing them (``writer``), validating documents before anything changes (``checks``) and planning
what applying them would change (``plan``). Pure: no Django, no database; the services read the database
and apply (``akeru.services.ascode``)."""

from .checks import Checked, Facts, check
from .documents import Document, Problem, complete, digest, key_of, label_of
from .plan import CHANGE, CREATE, DELETE, Change, Current, Plan, plan
from .reader import read
from .schema import API_VERSION, BY_NAME, KINDS
from .writer import render

__all__ = ["API_VERSION", "BY_NAME", "CHANGE", "CREATE", "DELETE", "KINDS", "Change", "Checked", "Current",
           "Document", "Facts", "Plan", "Problem", "check", "complete", "digest", "key_of", "label_of", "plan",
           "read", "render"]
