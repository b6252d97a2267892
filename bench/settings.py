"""Settings for benchmark runs: the production settings plus the baseline endpoint's routes.

Only ``ROOT_URLCONF`` changes, so the figures describe the product's own configuration
(middleware, database connections, cache, gateway settings) and the product ships no bench
endpoint.
"""

from klikit_admin.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
