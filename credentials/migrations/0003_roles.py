"""Create the console's roles as groups: Viewer, Issuer and Security admin.

A role is a plain ``auth.Group`` holding model permissions, so the console (django.contrib.admin)
shows and allows exactly what the group grants. Each role includes the one before it:

* Viewer: see businesses, credentials and the audit log.
* Issuer: also create and rename businesses, issue credentials (``add_credential``), edit their
  label, scopes, rate cap and expiry (``change_credential``) and rotate them.
* Security admin: also revoke credentials, delete businesses that never had a credential, and
  manage operator accounts.

Permissions are normally created after ``migrate`` finishes (post_migrate); they are created
here first so that a fresh database gets complete groups. The role table is frozen in this
file on purpose: a later change to the roles is a new migration, not an edit of this one.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEWER = [
    ("credentials", "view_business"),
    ("credentials", "view_credential"),
    ("credentials", "view_auditevent"),
]
ISSUER = VIEWER + [
    ("credentials", "add_business"),
    ("credentials", "change_business"),
    ("credentials", "add_credential"),
    ("credentials", "change_credential"),
    ("credentials", "rotate_credential"),
]
SECURITY_ADMIN = ISSUER + [
    ("credentials", "revoke_credential"),
    ("credentials", "delete_business"),
    ("auth", "view_user"),
    ("auth", "add_user"),
    ("auth", "change_user"),
    ("auth", "delete_user"),
    ("auth", "view_group"),
]
ROLES = {"Viewer": VIEWER, "Issuer": ISSUER, "Security admin": SECURITY_ADMIN}


def create_roles(apps, schema_editor):
    using = schema_editor.connection.alias
    for app_config in apps.get_app_configs():
        # Historical app configs have no models module; create_permissions skips those.
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=using)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in ROLES.items():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        permissions = []
        for app_label, codename in wanted:
            permissions.append(
                Permission.objects.using(using).get(
                    content_type__app_label=app_label, codename=codename
                )
            )
        group.permissions.set(permissions)


def delete_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("credentials", "0002_audit_append_only"),
    ]

    operations = [migrations.RunPython(create_roles, delete_roles)]
