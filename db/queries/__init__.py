"""Every read and write of the app, split by domain; import as `from db import queries`.

Keyword-only arguments, `session` first, `get_/list_/create_/update_/delete_` verbs; writes commit.
"""

from db.queries.console import *  # noqa: F403
from db.queries.core import *  # noqa: F403
from db.queries.graphdata import *  # noqa: F403
from db.queries.journey import *  # noqa: F403
from db.queries.values import *  # noqa: F403
