"""Let Security admins run a verification of the audit chain from the console.

The permission ``verify_auditevent`` is added to the Security admin role (0003_roles). The
addition is frozen in ``ADDED`` on purpose, as 0003 freezes its role table.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ADDED = {"Security admin": [("credentials", "verify_auditevent")]}


def add_permissions(apps, schema_editor):
    using = schema_editor.connection.alias
    app_config = apps.get_app_config("credentials")
    app_config.models_module = True  # historical app configs have none; see 0003_roles
    create_permissions(app_config, apps=apps, verbosity=0, using=using)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in ADDED.items():
        group = Group.objects.using(using).filter(name=name).first()
        if group is None:
            continue
        for app_label, codename in wanted:
            group.permissions.add(
                Permission.objects.using(using).get(
                    content_type__app_label=app_label, codename=codename
                )
            )


def remove_permissions(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.using(schema_editor.connection.alias).filter(
        content_type__app_label="credentials", codename="verify_auditevent"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("credentials", "0022_audit_chain_required"), ("credentials", "0003_roles")]

    operations = [
        migrations.AlterModelOptions(
            name="auditevent",
            options={
                "ordering": ["-occurred_at", "-id"],
                "permissions": [("verify_auditevent", "Can run a verification of the audit chain")],
            },
        ),
        migrations.RunPython(add_permissions, remove_permissions),
    ]
