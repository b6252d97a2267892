"""The operator console: django.contrib.admin, arranged for issuing and guarding credentials.

One module per page family: ``businesses``, ``credentials`` (issue, rotate, revoke), ``audit``,
``operators`` (with ``lockouts`` and ``twofactor``: sign-in, the two-factor page, resets).
Roles are groups (migration 0003); every view checks its own permission.
"""

from django.contrib import admin

from . import audit, businesses, credentials, operators  # noqa: F401  (registers the pages)

admin.site.site_header = "klikit credentials"
admin.site.site_title = "klikit credentials"
admin.site.index_title = "Operator console"
admin.site.site_url = None  # there is no public site to link to
admin.site.enable_nav_sidebar = False  # the lists are wide; the home page links every model
admin.site.disable_action("delete_selected")  # deletes would bypass the services
