"""index photo URLs: a crawl looks up the stored fingerprint of every photo URL it meets

Revision ID: 0005_photo_url_index
Revises: 0004_incremental_crawl
Create Date: 2026-12-03 17:35:00

``pipelines.photo_reuse`` reads, for each ad, the fingerprints already stored for its photo
URLs, so that photos fingerprinted by an earlier crawl are not downloaded again. Without an
index on ``ad_photos.url`` every such lookup reads the whole table.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_photo_url_index"
down_revision: str | None = "0004_incremental_crawl"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ad_photos") as batch:
        batch.create_index(batch.f("ix_ad_photos_url"), ["url"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ad_photos") as batch:
        batch.drop_index(batch.f("ix_ad_photos_url"))
