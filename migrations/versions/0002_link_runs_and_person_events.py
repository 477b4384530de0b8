"""link runs and person events

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 13:36:10.043674

``link_runs`` holds the linker's watermarks (so a run only looks for evidence on what is new)
and ``person_events`` records when persons are created, merged or split between runs.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "link_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.Column("watermark", sa.JSON(), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_runs")),
    )
    op.create_table(
        "person_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_run_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("other_person_id", sa.Integer(), nullable=True),
        sa.Column("n_ads", sa.Integer(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["link_run_id"],
            ["link_runs.id"],
            name=op.f("fk_person_events_link_run_id_link_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person_events")),
    )
    with op.batch_alter_table("person_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_person_events_link_run_id"), ["link_run_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_person_events_person_id"), ["person_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("person_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_person_events_person_id"))
        batch_op.drop_index(batch_op.f("ix_person_events_link_run_id"))
    op.drop_table("person_events")
    op.drop_table("link_runs")
