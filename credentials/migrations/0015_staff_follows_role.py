"""Give console access to every operator who already has a role.

From now on staff access follows from the role (credentials.operators sets ``is_staff`` on every
change). Accounts made earlier with a role but without the hidden "staff" flag could not sign
in; this makes them staff. It never takes access away: an account without a role keeps its
flag until an operator next saves it.
"""

from django.db import migrations


def staff_with_a_role(apps, schema_editor):
    User = apps.get_model("auth", "User")
    using = schema_editor.connection.alias
    User.objects.using(using).filter(is_staff=False, groups__isnull=False).update(is_staff=True)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("credentials", "0010_operator_second_factor"),
    ]

    operations = [migrations.RunPython(staff_with_a_role, migrations.RunPython.noop)]
