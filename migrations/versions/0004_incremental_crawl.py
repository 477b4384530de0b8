"""incremental crawling: listing signature and last full fetch of each ad

Revision ID: 0004_incremental_crawl
Revises: 0003_privacy
Create Date: 2026-12-03 14:20:00

``ads.listing_signature`` is the digest of how the listing showed the ad when it was last seen,
``ads.detail_fetched_at`` the time its ad page was last downloaded in full. A daily crawl skips
the ad page of an ad whose listing entry still has the stored signature, until the last full
fetch is older than ``LOVITURA_REFETCH_DAYS``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_incremental_crawl"
down_revision: str | None = "0003_privacy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ads") as batch:
        batch.add_column(sa.Column("listing_signature", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("detail_fetched_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ads") as batch:
        batch.drop_column("detail_fetched_at")
        batch.drop_column("listing_signature")
