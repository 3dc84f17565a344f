"""Subjects and their data keys: pseudonymous lookup, DEK creation, unwrapping and shredding."""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import NamedTuple

from sqlalchemy import Connection, bindparam, select, update

from tactful.crypto import (
    Aead,
    FieldCipher,
    KeyRing,
    Pseudonyms,
    associated_data,
    data_aead,
    fresh_nonces,
)
from tactful.errors import SubjectNotFound, ValidationError
from tactful.store.engine import insert_ignore, now
from tactful.store.keystore import KeyStore
from tactful.store.tables import Subject, table_of

MAX_USER_ID = 256
CIPHER_CACHE = 4096  # unwrapped DEKs kept per process by default (TACTFUL_DEK_CACHE)
PSEUDONYM_MEMO = 4096  # user id -> pseudonym, the last ones kept per process (an HMAC each)

_subject = table_of(Subject)
_FIND = select(
    _subject.c.id,
    _subject.c.alias,
    _subject.c.status,
    _subject.c.jurisdiction,
    _subject.c.user_id_ct.is_(None).label("legacy"),
).where(_subject.c.ref == bindparam("ref"))
_FIND_MANY = select(
    _subject.c.id,
    _subject.c.ref,
    _subject.c.alias,
    _subject.c.status,
    _subject.c.jurisdiction,
    _subject.c.user_id_ct.is_(None).label("legacy"),
).where(_subject.c.ref.in_(bindparam("refs", expanding=True)))
# Live subjects' (id, pseudonym, alias) by id (bulk training reads), built once.
_LIVE_KEYS = select(_subject.c.id, _subject.c.ref, _subject.c.alias).where(
    _subject.c.id.in_(bindparam("ids", expanding=True)) & _subject.c.ref.is_not(None)
)


class SubjectRef(NamedTuple):
    """A resolved subject: internal id, keyed pseudonym, audit alias, status, jurisdiction.

    A named tuple (immutable like the frozen dataclass it was, a third of its construction
    cost): bulk ingestion resolves one per user of every batch.
    """

    id: int
    ref: str
    alias: str
    status: str
    jurisdiction: str | None
    needs_user_id: bool = False  # created before schema version 2: user id not yet stored


# A subject as a plain tuple, in SubjectRef's order: (id, ref, alias, status, jurisdiction,
# needs_user_id). The bulk paths hold one per user of a batch; the garbage collector stops
# tracking a plain tuple of str, int and None at its first look, but never a named tuple,
# and a SubjectRef per user kept alive through a batch set off full collections.
SubjectRow = tuple[int, str, str, str, str | None, bool]


def new_aliases(n: int) -> list[str]:
    """`n` fresh subject aliases (also their data keys' ids): 32 hex characters, the creation
    time in milliseconds (12) then 80 random bits (20), drawn in one call.

    Time-ordered so that new keys land at the end of the key store's index and of the subject
    table's alias index instead of all over them (a batch of random ids dirtied most of the
    index's pages). The time is the one both tables store next to the alias (`created_at`);
    the random part keeps aliases unguessable and unique.
    """
    head = f"{time.time_ns() // 1_000_000:012x}"
    drawn = os.urandom(10 * n).hex()
    return [head + drawn[20 * i : 20 * i + 20] for i in range(n)]


def check_user_id(user_id: object) -> str:
    """Validate an app user id (never echoed back in the message)."""
    if not isinstance(user_id, str) or not user_id or len(user_id) > MAX_USER_ID:
        raise ValidationError(
            f"user id must be a non-empty string of at most {MAX_USER_ID} characters"
        )
    return user_id


class Subjects:
    """Finds and creates subjects and hands out their (cached) field ciphers.

    Data keys live in the separate key store, under the subject's random alias as key id.
    """

    def __init__(
        self, keystore: KeyStore, store_id: str, *, cache_size: int = CIPHER_CACHE
    ) -> None:
        self.keystore = keystore
        self.store_id = store_id
        self.cache_size = cache_size
        # The subjects' AES-GCM objects (`Aead`: untracked by the garbage collector).
        self._ciphers: OrderedDict[int, Aead] = OrderedDict()
        # Ciphers of subjects created in the open transaction when there were more of them
        # than the cache holds: the bulk write that created them encrypts under them next,
        # and would otherwise read and unwrap again the keys it just made. Emptied when any
        # transaction of the store ends (`end_transaction`), on rollback and on erasure.
        self._fresh: dict[int, Aead] = {}
        self._pseudonyms: tuple[bytes, Pseudonyms, dict[str, str]] = (b"", Pseudonyms(b""), {})

    @property
    def keys(self) -> KeyRing:
        """The master keys (pseudonym key, derived keys)."""
        return self.keystore.ring

    def pseudonym(self, user_id: str) -> str:
        """The stored pseudonym of an app user id (the last PSEUDONYM_MEMO ids' are kept)."""
        user_id = check_user_id(user_id)
        make, memo = self._current()
        found = memo.get(user_id)
        if found is None:
            found = make(user_id)
            if len(memo) >= PSEUDONYM_MEMO:
                memo.clear()
            memo[user_id] = found
        return found

    def _pseudonym(self) -> Pseudonyms:
        return self._current()[0]

    def _current(self) -> tuple[Pseudonyms, dict[str, str]]:
        # The HMAC state under the pseudonym key and the ids' pseudonyms under it, both
        # replaced if the key ring brings another key.
        key = self.keys.pseudonym_key
        if self._pseudonyms[0] != key:
            self._pseudonyms = (key, Pseudonyms(key), {})
        return self._pseudonyms[1], self._pseudonyms[2]

    def find(self, conn: Connection, user_id: str) -> SubjectRef | None:
        """The live subject of this user id, or None."""
        ref = self.pseudonym(user_id)
        row = conn.execute(_FIND, {"ref": ref}).first()
        if row is None:
            return None
        # Unpacked, not row.name: a Row's attribute lookup raises and formats an
        # AttributeError inside before it finds the column (~2,000 instructions each).
        sid, alias, status, jurisdiction, legacy = row
        return SubjectRef(sid, ref, alias, status, jurisdiction, bool(legacy))

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
        """The subject of this user id, created with a fresh DEK if new.

        The DEK is committed to the key store before the subject row is written. Concurrent
        creators of the same user (other processes) end with one subject; the loser's unused
        key is deleted at once.
        """
        found = self.find(conn, user_id)
        if found is not None:
            if jurisdiction and jurisdiction != found.jurisdiction:
                conn.execute(
                    update(_subject)
                    .where(_subject.c.id == found.id)
                    .values(jurisdiction=jurisdiction)
                )
                return SubjectRef(
                    found.id,
                    found.ref,
                    found.alias,
                    found.status,
                    jurisdiction,
                    found.needs_user_id,
                )
            return found
        return self.create_many(conn, {user_id: jurisdiction})[user_id]

    def resolve_many(self, conn: Connection, users: Iterable[str]) -> dict[str, SubjectRef]:
        """The subjects of many user ids, creating those that have none (bulk ingestion)."""
        return {u: SubjectRef(*row) for u, row in self.resolve_rows(conn, users).items()}

    def resolve_rows(self, conn: Connection, users: Iterable[str]) -> dict[str, SubjectRow]:
        """`resolve_many` as plain tuples (`SubjectRow`), for bulk paths that keep one per
        user of a batch alive."""
        make = self._pseudonym()
        refs = {u: make(check_user_id(u)) for u in dict.fromkeys(users)}
        out: dict[str, SubjectRow] = {}
        by_ref = {r: u for u, r in refs.items()}
        ref_list = list(by_ref)
        for start in range(0, len(ref_list), 500):
            rows = conn.execute(_FIND_MANY, {"refs": ref_list[start : start + 500]}).all()
            for sid, ref, alias, status, jurisdiction, legacy in rows:
                out[by_ref[ref]] = (sid, ref, alias, status, jurisdiction, bool(legacy))
        missing: dict[str, str | None] = {u: None for u in refs if u not in out}
        if missing:
            made = self.create_many(conn, missing, refs)
            out.update(
                (u, (s.id, s.ref, s.alias, s.status, s.jurisdiction, s.needs_user_id))
                for u, s in made.items()
            )
        return out

    def create_many(
        self,
        conn: Connection,
        users: dict[str, str | None],
        refs: Mapping[str, str] | None = None,
    ) -> dict[str, SubjectRef]:
        """Create subjects for user ids that have none (bulk ingestion); returns all of them.

        `refs` may hand in the users' pseudonyms when the caller computed them already.
        """
        out: dict[str, SubjectRef] = {}
        if refs is None:
            refs = {u: self.pseudonym(u) for u in users}
        new = dict(zip(users, new_aliases(len(users)), strict=True))
        deks = self.keystore.create(self.store_id, list(new.values()))
        stamp = now()
        rows: list[dict[str, object]] = []
        ciphers = {alias: data_aead(dek) for alias, dek in deks.items()}
        nonces = fresh_nonces(len(new))
        for i, (user, alias) in enumerate(new.items()):
            nonce = nonces[12 * i : 12 * i + 12]
            rows.append(
                {
                    "ref": refs[user],
                    "alias": alias,
                    "status": "active",
                    "jurisdiction": users[user],
                    "created_at": stamp,
                    "user_id_ct": nonce
                    + ciphers[alias].encrypt(
                        nonce,
                        user.encode("utf-8"),
                        associated_data(refs[user], "subject", "user_id"),
                    ),
                }
            )
        insert_ignore(conn, _subject, rows, ["ref"])
        by_ref = {
            row[1]: SubjectRef(*row)
            for start in range(0, len(rows), 500)
            for row in conn.execute(
                select(
                    _subject.c.id,
                    _subject.c.ref,
                    _subject.c.alias,
                    _subject.c.status,
                    _subject.c.jurisdiction,
                ).where(_subject.c.ref.in_([refs[u] for u in list(users)[start : start + 500]]))
            )
        }
        unused = []
        made: dict[int, Aead] = {}
        for user, alias in new.items():
            subject = out[user] = by_ref[refs[user]]
            if subject.alias == alias:
                made[subject.id] = ciphers[alias]
            else:
                unused.append(alias)
        self._remember_many(made)
        if len(made) > self.cache_size:
            self._fresh.update(made)
        if unused:
            self.keystore.delete(self.store_id, unused)
        return out

    def user_id(self, conn: Connection, subject_id: int) -> str | None:
        """The app's user id of a live subject (decrypted), or None if not recorded."""
        row = conn.execute(
            select(_subject.c.ref, _subject.c.alias, _subject.c.user_id_ct).where(
                (_subject.c.id == subject_id) & (_subject.c.status != "erased")
            )
        ).first()
        if row is None or row.user_id_ct is None:
            return None
        subject = SubjectRef(subject_id, row.ref, row.alias, "active", None)
        return self.unseal(conn, subject, "subject", "user_id", row.user_id_ct).decode("utf-8")

    def remember_user_id(self, conn: Connection, subject: SubjectRef, user_id: str) -> None:
        """Store the encrypted user id of a subject created before schema version 2."""
        if not subject.needs_user_id:
            return
        blob = self.seal(conn, subject, "subject", "user_id", user_id.encode("utf-8"))
        conn.execute(
            update(_subject)
            .where((_subject.c.id == subject.id) & _subject.c.user_id_ct.is_(None))
            .values(user_id_ct=blob)
        )

    def cipher(self, conn: Connection, subject: SubjectRef) -> FieldCipher:
        """The subject's field cipher, unwrapping the DEK on first use."""
        return FieldCipher.over(self.aead(subject))

    def aead(self, subject: SubjectRef) -> Aead:
        """The subject's AES-GCM object (cached), unwrapping the DEK on first use;
        SubjectNotFound if the key is gone."""
        cached = self._ciphers.get(subject.id)
        if cached is not None:
            self._ciphers.move_to_end(subject.id)
            return cached
        dek = self.keystore.unwrap(self.store_id, [subject.alias]).get(subject.alias)
        if dek is None:
            raise SubjectNotFound(
                "this user's data key is gone (erased); nothing of theirs can be read"
            )
        return self._remember(subject.id, data_aead(dek))

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

    def aeads_of(self, subjects: Iterable[SubjectRow]) -> dict[int, Aead]:
        """AES-GCM objects of resolved subjects, unwrapping the uncached DEKs in one batch.

        Subjects whose key is gone (erased) are absent. SubjectRefs or `SubjectRow`s: both
        are tuples of the same layout (id first, alias third).
        """
        out: dict[int, Aead] = {}
        missing: dict[str, int] = {}
        cache = self._ciphers
        fresh = self._fresh
        for subject in subjects:
            sid = subject[0]
            cached = cache.get(sid)
            if cached is None and fresh:
                cached = fresh.get(sid)
            if cached is not None:
                out[sid] = cached
            else:
                missing[subject[2]] = sid
        if missing:
            deks = self.keystore.unwrap(self.store_id, list(missing))
            made = {missing[alias]: data_aead(dek) for alias, dek in deks.items()}
            out.update(made)
            self._remember_many(made)
        return out

    def refs(self, conn: Connection, subject_ids: Iterable[int]) -> list[SubjectRef]:
        """The live subjects with these internal ids (erased ones are left out)."""
        ids = list(subject_ids)
        out: list[SubjectRef] = []
        for start in range(0, len(ids), 500):
            rows = conn.execute(
                select(
                    _subject.c.id,
                    _subject.c.ref,
                    _subject.c.alias,
                    _subject.c.status,
                    _subject.c.jurisdiction,
                ).where(_subject.c.id.in_(ids[start : start + 500]) & _subject.c.ref.is_not(None))
            )
            out.extend(SubjectRef(*r) for r in rows)  # (id, ref, alias, status, jurisdiction)
        return out

    def aeads_for(self, conn: Connection, subject_ids: list[int]) -> dict[int, tuple[str, Aead]]:
        """(pseudonym, AES-GCM object) of many live subjects at once (bulk training reads)."""
        out: dict[int, tuple[str, Aead]] = {}
        for start in range(0, len(subject_ids), 500):
            chunk = subject_ids[start : start + 500]
            rows = conn.execute(_LIVE_KEYS, {"ids": chunk}).all()
            cached = self._ciphers
            missing = {alias: sid for sid, _, alias in rows if sid not in cached}
            made: dict[int, Aead] = {}
            if missing:
                deks = self.keystore.unwrap(self.store_id, list(missing))
                made = {missing[alias]: data_aead(dek) for alias, dek in deks.items()}
            for sid, ref, _ in rows:
                cipher = made.get(sid) or cached.get(sid)
                if cipher is None:
                    continue  # erased meanwhile: nothing of theirs can be read
                out[sid] = (ref, cipher)
            # Cached only now: remembering them one by one could evict a cipher of this
            # chunk before it was handed out.
            self._remember_many(made)
        return out

    def shred(self, conn: Connection, subject: SubjectRef) -> None:
        """Crypto-shred: delete the DEK (committed first), then mark the subject erased."""
        self.keystore.delete(self.store_id, [subject.alias])
        self.evict(subject.id)
        conn.execute(
            update(_subject)
            .where(_subject.c.id == subject.id)
            .values(ref=None, status="erased", jurisdiction=None, erased_at=now(), user_id_ct=None)
        )

    def evict(self, subject_id: int) -> None:
        """Drop a cached cipher (after erasure, or when a transaction rolled back)."""
        self._ciphers.pop(subject_id, None)
        self._fresh.pop(subject_id, None)

    def clear_cache(self) -> None:
        """Forget every cached cipher."""
        self._ciphers.clear()
        self._fresh.clear()

    def end_transaction(self) -> None:
        """A transaction ended: forget the ciphers kept for the subjects it created beyond
        the cache's size (the cache itself stays)."""
        if self._fresh:
            self._fresh.clear()

    def _remember_many(self, made: Mapping[int, Aead]) -> None:
        # Ciphers of subjects not cached yet, then the oldest evicted once for the batch
        # (what `_remember` one by one would leave).
        ciphers = self._ciphers
        size = self.cache_size
        if len(made) >= size:
            # A batch wider than the cache would push out everything cached and most of its
            # own ciphers: insert only the last `size` of them (one bulk insertion).
            ciphers.clear()
            if size > 0:
                ciphers.update(islice(made.items(), len(made) - size, None))
            return
        ciphers.update(made)
        for _ in range(len(ciphers) - size):
            ciphers.popitem(last=False)

    def _remember(self, subject_id: int, cipher: Aead) -> Aead:
        ciphers = self._ciphers
        if subject_id in ciphers:
            ciphers.move_to_end(subject_id)
        ciphers[subject_id] = cipher
        while len(ciphers) > self.cache_size:
            ciphers.popitem(last=False)
        return cipher
