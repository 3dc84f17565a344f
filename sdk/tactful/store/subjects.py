"""Subjects and their data keys: pseudonymous lookup, DEK creation, unwrapping and shredding."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select, update

from tactful.crypto import (
    FieldCipher,
    KeyRing,
    associated_data,
    new_data_key,
    pseudonym,
    unwrap_key,
    wrap_key,
)
from tactful.errors import SubjectNotFound, ValidationError
from tactful.store.engine import now
from tactful.store.tables import Subject, SubjectKey, table_of

MAX_USER_ID = 256
CIPHER_CACHE = 4096

_subject = table_of(Subject)
_key = table_of(SubjectKey)


@dataclass(frozen=True, slots=True)
class SubjectRef:
    """A resolved subject: internal id, keyed pseudonym, audit alias, status, jurisdiction."""

    id: int
    ref: str
    alias: str
    status: str
    jurisdiction: str | None


def check_user_id(user_id: object) -> str:
    """Validate an app user id (never echoed back in the message)."""
    if not isinstance(user_id, str) or not user_id or len(user_id) > MAX_USER_ID:
        raise ValidationError(
            f"user id must be a non-empty string of at most {MAX_USER_ID} characters"
        )
    return user_id


class Subjects:
    """Finds and creates subjects and hands out their (cached) field ciphers."""

    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys
        self._ciphers: OrderedDict[int, FieldCipher] = OrderedDict()

    def pseudonym(self, user_id: str) -> str:
        """The stored pseudonym of an app user id."""
        return pseudonym(self._keys.pseudonym_key, check_user_id(user_id))

    def find(self, conn: Connection, user_id: str) -> SubjectRef | None:
        """The live subject of this user id, or None."""
        ref = self.pseudonym(user_id)
        row = conn.execute(
            select(
                _subject.c.id, _subject.c.alias, _subject.c.status, _subject.c.jurisdiction
            ).where(_subject.c.ref == ref)
        ).first()
        if row is None:
            return None
        return SubjectRef(row.id, ref, row.alias, row.status, row.jurisdiction)

    def get(self, conn: Connection, user_id: str) -> SubjectRef:
        """The live subject of this user id; SubjectNotFound if none."""
        subject = self.find(conn, user_id)
        if subject is None:
            raise SubjectNotFound(
                "no data is held for this user id (never recorded, or erased); check the id"
            )
        return subject

    def get_or_create(
        self, conn: Connection, user_id: str, *, jurisdiction: str | None = None
    ) -> SubjectRef:
        """The subject of this user id, created with a fresh wrapped DEK if new."""
        found = self.find(conn, user_id)
        if found is not None:
            if jurisdiction and jurisdiction != found.jurisdiction:
                conn.execute(
                    update(_subject)
                    .where(_subject.c.id == found.id)
                    .values(jurisdiction=jurisdiction)
                )
                return SubjectRef(found.id, found.ref, found.alias, found.status, jurisdiction)
            return found
        ref = self.pseudonym(user_id)
        alias = secrets.token_hex(16)
        result = conn.execute(
            _subject.insert().values(
                ref=ref, alias=alias, status="active", jurisdiction=jurisdiction, created_at=now()
            )
        )
        (subject_id,) = result.inserted_primary_key or (None,)
        assert subject_id is not None
        dek = new_data_key()
        version = self._keys.current
        wrapped = wrap_key(self._keys.kek(version), dek, subject_ref=ref, kek_version=version)
        conn.execute(
            _key.insert().values(subject_id=subject_id, kek_version=version, wrapped=wrapped)
        )
        self._remember(subject_id, FieldCipher(dek))
        return SubjectRef(subject_id, ref, alias, "active", jurisdiction)

    def cipher(self, conn: Connection, subject: SubjectRef) -> FieldCipher:
        """The subject's field cipher, unwrapping the DEK on first use."""
        cached = self._ciphers.get(subject.id)
        if cached is not None:
            self._ciphers.move_to_end(subject.id)
            return cached
        row = conn.execute(
            select(_key.c.kek_version, _key.c.wrapped).where(_key.c.subject_id == subject.id)
        ).first()
        if row is None:
            raise SubjectNotFound("this user's data key is gone (erased); nothing can be read")
        dek = unwrap_key(
            self._keys.kek(row.kek_version),
            row.wrapped,
            subject_ref=subject.ref,
            kek_version=row.kek_version,
        )
        cipher = FieldCipher(dek)
        self._remember(subject.id, cipher)
        return cipher

    def seal(
        self, conn: Connection, subject: SubjectRef, table: str, field: str, data: bytes
    ) -> bytes:
        """Encrypt `data` for the subject, bound to (subject, table, field)."""
        aad = associated_data(subject.ref, table, field)
        return self.cipher(conn, subject).encrypt(data, aad)

    def unseal(
        self, conn: Connection, subject: SubjectRef, table: str, field: str, blob: bytes
    ) -> bytes:
        """Decrypt what `seal` produced for the same (subject, table, field)."""
        aad = associated_data(subject.ref, table, field)
        return self.cipher(conn, subject).decrypt(blob, aad)

    def ciphers_for(self, conn: Connection, subject_ids: list[int]) -> dict[int, FieldCipher]:
        """Field ciphers for many subjects at once (bulk training reads)."""
        out: dict[int, FieldCipher] = {}
        missing = []
        for sid in subject_ids:
            cached = self._ciphers.get(sid)
            if cached is not None:
                out[sid] = cached
            else:
                missing.append(sid)
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            rows = conn.execute(
                select(_key.c.subject_id, _key.c.kek_version, _key.c.wrapped, _subject.c.ref)
                .join(_subject, _subject.c.id == _key.c.subject_id)
                .where(_key.c.subject_id.in_(chunk))
            )
            for row in rows:
                dek = unwrap_key(
                    self._keys.kek(row.kek_version),
                    row.wrapped,
                    subject_ref=row.ref,
                    kek_version=row.kek_version,
                )
                out[row.subject_id] = self._remember(row.subject_id, FieldCipher(dek))
        return out

    def shred(self, conn: Connection, subject: SubjectRef) -> None:
        """Crypto-shred: delete the subject's DEK and unlink the pseudonym (row kept as erased)."""
        conn.execute(delete(_key).where(_key.c.subject_id == subject.id))
        conn.execute(
            update(_subject)
            .where(_subject.c.id == subject.id)
            .values(ref=None, status="erased", jurisdiction=None, erased_at=now())
        )
        self.evict(subject.id)

    def evict(self, subject_id: int) -> None:
        """Drop a cached cipher (after erasure, or when a transaction rolled back)."""
        self._ciphers.pop(subject_id, None)

    def clear_cache(self) -> None:
        """Forget every cached cipher."""
        self._ciphers.clear()

    def _remember(self, subject_id: int, cipher: FieldCipher) -> FieldCipher:
        self._ciphers[subject_id] = cipher
        self._ciphers.move_to_end(subject_id)
        while len(self._ciphers) > CIPHER_CACHE:
            self._ciphers.popitem(last=False)
        return cipher
