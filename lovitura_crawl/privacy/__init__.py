"""Lawful processing under the AVG/GDPR and the Wpg: purposes, pseudonyms, retention, audit log,
least-privilege database roles and the rights of data subjects. See docs/privacy.md."""
