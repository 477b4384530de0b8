"""lawful processing: purposes, pseudonyms, audit log, analyst views

Revision ID: 0003_privacy
Revises: 0002
Create Date: 2026-12-03 14:00:00.000000

Tables ``purposes``, ``case_ads``, ``crawl_run_purposes``, ``link_run_purposes``,
``pseudonyms`` and ``audit_log`` (see docs/schema.md, "Lawful processing"), and the
``analyst_*`` views: the raw tables without free text and direct identifiers, with keyed
pseudonyms in their place. On PostgreSQL the analyst role may read only these views.

A later migration that alters or drops a column one of these views reads must drop the view
first and create it again afterwards (SQLite's batch mode and PostgreSQL both refuse otherwise).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_privacy"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = {
    "analyst_ads": """
        SELECT a.id, a.site, a.site_ad_id, a.age, a.first_seen_at, a.last_seen_at, a.gone_at,
               a.municipality_code, a.country, a.place_method, a.person_id, a.network_id
        FROM ads AS a""",
    "analyst_observations": """
        SELECT o.id, o.ad_id, o.observed_on, o.observed_at, o.crawl_run_id,
               o.municipality_code, o.country
        FROM ad_observations AS o""",
    "analyst_phones": """
        SELECT ph.id, ph.ad_id, ps.pseudonym AS phone_pseudonym, ph.field,
               ph.first_seen_at, ph.last_seen_at
        FROM ad_phones AS ph
        LEFT JOIN pseudonyms AS ps ON ps.kind = 'phone' AND ps.value = ph.phone""",
    "analyst_links": """
        SELECT l.id, l.ad_a, l.ad_b, l.kind, l.level, ps.pseudonym AS value_pseudonym,
               l.strength, l.created_at
        FROM links AS l
        LEFT JOIN pseudonyms AS ps ON ps.kind = l.kind AND ps.value = l.value""",
    "analyst_persons": """
        SELECT p.id, p.network_id, p.created_at, p.updated_at, p.n_ads, p.first_seen_at,
               p.last_seen_at, p.n_municipalities, p.median_stay_days, p.border_crossings
        FROM persons AS p""",
    "analyst_networks": """
        SELECT n.id, n.created_at, n.updated_at, n.n_persons, n.n_ads
        FROM networks AS n""",
    "analyst_trail_stays": """
        SELECT s.id, s.person_id, s.municipality_code, s.country, s.place_name, s.arrived_at,
               s.left_at, s.n_ads, s.sites
        FROM trail_stays AS s""",
    "analyst_trail_moves": """
        SELECT m.id, m.person_id, m.from_municipality_code, m.to_municipality_code,
               m.from_country, m.to_country, m.left_at, m.arrived_at
        FROM trail_moves AS m""",
    "analyst_municipalities": """
        SELECT mu.code, mu.name, mu.province, mu.lat, mu.lon
        FROM municipalities AS mu""",
    "analyst_pseudonym_keys": """
        SELECT ps.key_id, ps.kind, COUNT(*) AS n
        FROM pseudonyms AS ps
        GROUP BY ps.key_id, ps.kind""",
}


def upgrade() -> None:
    op.create_table(
        "purposes",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("legal_basis", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("demo", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_purposes")),
    )
    op.create_table(
        "pseudonyms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("pseudonym", sa.String(length=40), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pseudonyms")),
        sa.UniqueConstraint("kind", "value", name=op.f("uq_pseudonyms_kind_value")),
    )
    with op.batch_alter_table("pseudonyms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pseudonyms_pseudonym"), ["pseudonym"], unique=False)

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("db_user", sa.String(length=100), nullable=True),
        sa.Column("host", sa.String(length=200), nullable=True),
        sa.Column("purpose", sa.String(length=64), nullable=True),
        sa.Column("command", sa.String(length=60), nullable=False),
        sa.Column("filters", sa.Text(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("file_path", sa.Text(), nullable=True),
        sa.Column("file_sha256", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("entry_hash", name=op.f("uq_audit_log_entry_hash")),
        sa.UniqueConstraint("prev_hash", name=op.f("uq_audit_log_prev_hash")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_log_seq")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_purpose"), ["purpose"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # The server names the login; roles get no INSERT right on this column (roles.py).
        op.execute("ALTER TABLE audit_log ALTER COLUMN db_user SET DEFAULT current_user")

    op.create_table(
        "case_ads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("purpose_code", sa.String(length=64), nullable=False),
        sa.Column("ad_id", sa.Integer(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["ad_id"], ["ads.id"], name=op.f("fk_case_ads_ad_id_ads"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["purpose_code"],
            ["purposes.code"],
            name=op.f("fk_case_ads_purpose_code_purposes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_ads")),
        sa.UniqueConstraint("purpose_code", "ad_id", name=op.f("uq_case_ads_purpose_code_ad_id")),
    )
    with op.batch_alter_table("case_ads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_ads_ad_id"), ["ad_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_case_ads_purpose_code"), ["purpose_code"], unique=False
        )

    op.create_table(
        "crawl_run_purposes",
        sa.Column("crawl_run_id", sa.Integer(), nullable=False),
        sa.Column("purpose_code", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["crawl_run_id"],
            ["crawl_runs.id"],
            name=op.f("fk_crawl_run_purposes_crawl_run_id_crawl_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["purpose_code"],
            ["purposes.code"],
            name=op.f("fk_crawl_run_purposes_purpose_code_purposes"),
        ),
        sa.PrimaryKeyConstraint("crawl_run_id", name=op.f("pk_crawl_run_purposes")),
    )
    with op.batch_alter_table("crawl_run_purposes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_crawl_run_purposes_purpose_code"), ["purpose_code"], unique=False
        )

    op.create_table(
        "link_run_purposes",
        sa.Column("link_run_id", sa.Integer(), nullable=False),
        sa.Column("purpose_code", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["link_run_id"],
            ["link_runs.id"],
            name=op.f("fk_link_run_purposes_link_run_id_link_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["purpose_code"],
            ["purposes.code"],
            name=op.f("fk_link_run_purposes_purpose_code_purposes"),
        ),
        sa.PrimaryKeyConstraint("link_run_id", name=op.f("pk_link_run_purposes")),
    )
    with op.batch_alter_table("link_run_purposes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_link_run_purposes_purpose_code"), ["purpose_code"], unique=False
        )

    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {body}")


def downgrade() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    with op.batch_alter_table("link_run_purposes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_link_run_purposes_purpose_code"))
    op.drop_table("link_run_purposes")
    with op.batch_alter_table("crawl_run_purposes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crawl_run_purposes_purpose_code"))
    op.drop_table("crawl_run_purposes")
    with op.batch_alter_table("case_ads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_ads_purpose_code"))
        batch_op.drop_index(batch_op.f("ix_case_ads_ad_id"))
    op.drop_table("case_ads")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_purpose"))
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))
    op.drop_table("audit_log")
    with op.batch_alter_table("pseudonyms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pseudonyms_pseudonym"))
    op.drop_table("pseudonyms")
    op.drop_table("purposes")
