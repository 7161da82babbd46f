"""The IAM directory: users, keys, roles and policies, held in memory, written through.

Every read a request needs (which secret signs an access key, which policies a
principal has) is a dict lookup: the SigV4 path and authorisation never touch SQL.
Every change is written to the `IamStore` before memory changes, under one lock, so
what was acknowledged is on disk and two changes never interleave. A multi-node
deployment would need the other nodes told of changes; lamina's IAM is one-node now.

Names of users and roles are unique regardless of case, as in IAM.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lamina.errors import ClientError
from lamina.iam import access, names, sessions
from lamina.iam.aws_managed import AWS_POLICY_PREFIX, aws_managed_policies
from lamina.iam.errors import DeleteConflict, EntityAlreadyExists, LimitExceeded, NoSuchEntity
from lamina.iam.evaluation import Decision, NamedPolicy, Reason, Requester, evaluate
from lamina.iam.live_sessions import LiveSessions
from lamina.iam.model import (
    DEFAULT_ACCOUNT,
    AccessKey,
    Attachment,
    Credential,
    InlinePolicy,
    ManagedPolicy,
    OwnerKind,
    Principal,
    PrincipalKind,
    Role,
    RoleSession,
    TemporaryCredentials,
    User,
)
from lamina.iam.patterns import Facts
from lamina.iam.policy import PolicyDocument, PolicyKind
from lamina.iam.policy_cache import PolicyCache
from lamina.iam.store import Change, Delete, IamStore, Put

MAX_KEYS_PER_USER = 2
Owner = tuple[OwnerKind, str]  # (kind, lower-cased name)


@dataclass(frozen=True, slots=True)
class RootKey:
    access_key_id: str
    secret_access_key: str


class IamDirectory:
    """IAM state for one account. Call `start()` before anything else."""

    def __init__(
        self,
        store: IamStore,
        root: RootKey,
        account_id: str = DEFAULT_ACCOUNT,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account_id = account_id
        self._store = store
        self._root = root
        self._clock = clock
        self._cache = PolicyCache()
        self._lock = asyncio.Lock()
        self._users: dict[str, User] = {}
        self._keys: dict[str, AccessKey] = {}
        self._roles: dict[str, Role] = {}
        self._inline: dict[Owner, dict[str, InlinePolicy]] = {}
        self._managed: dict[str, ManagedPolicy] = aws_managed_policies()
        self._attached: dict[Owner, dict[str, Attachment]] = {}
        # AssumeRole sessions (stored) and service-issued ones (memory only).
        self._sessions = LiveSessions()
        self._credentials: dict[str, Credential] = {}
        self._root_principal = access.root_principal(account_id)

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    @property
    def root_principal(self) -> Principal:
        return self._root_principal

    async def start(self) -> None:
        """Load everything into memory and forget expired sessions."""
        now = self._clock()
        await self._store.expire_sessions(now)
        snapshot = await self._store.load(sessions_after=now)
        self._users = {u.name.lower(): u for u in snapshot.users}
        self._keys = {k.access_key_id: k for k in snapshot.access_keys}
        self._roles = {r.name.lower(): r for r in snapshot.roles}
        for policy in snapshot.inline_policies:
            owner = (OwnerKind(policy.owner_kind), policy.owner_name.lower())
            self._inline.setdefault(owner, {})[policy.policy_name] = policy
        self._managed.update({p.arn: p for p in snapshot.managed_policies})
        for attachment in snapshot.attachments:
            owner = (OwnerKind(attachment.owner_kind), attachment.owner_name.lower())
            self._attached.setdefault(owner, {})[attachment.policy_arn] = attachment
        self._sessions = LiveSessions(snapshot.sessions)
        self._rebuild()

    # -- credentials (the SigV4 path) ----------------------------------------------------

    def lookup(self, access_key_id: str) -> Credential | None:
        """The credential for an access key id; None if unknown, inactive or expired."""
        credential = self._credentials.get(access_key_id)
        if credential is None:
            return None
        expires = credential.principal.expires
        if expires is not None and self._clock() >= expires:
            return None
        return credential

    def expired(self, access_key_id: str) -> bool:
        """Is this a temporary credential that has expired (as opposed to unknown)?"""
        credential = self._credentials.get(access_key_id)
        expires = credential.principal.expires if credential is not None else None
        return expires is not None and self._clock() >= expires

    def lookup_secret(self, access_key_id: str) -> str | None:
        """For `SigV4Verifier`: the secret that signs with `access_key_id`."""
        credential = self.lookup(access_key_id)
        return credential.secret if credential is not None else None

    def authenticate(self, access_key_id: str, session_token: str | None) -> Credential | None:
        """`lookup`, and the request's session token must be the credential's: required
        for temporary credentials, refused with long-term ones (as AWS does)."""
        credential = self.lookup(access_key_id)
        if credential is None:
            return None
        expected = credential.principal.session_token_expected
        if expected is None or session_token is None:
            return credential if expected is session_token else None
        # Constant time: the token is a secret the caller is guessing at.
        return (
            credential if hmac.compare_digest(expected.encode(), session_token.encode()) else None
        )

    # -- authorisation -------------------------------------------------------------------

    def parse_policy(
        self, document: str | Mapping[str, object], kind: PolicyKind
    ) -> PolicyDocument:
        """Parse (and cache) a policy; hot paths pass the result to `authorize`."""
        return self._cache.parse(document, kind)

    def authorize(
        self,
        principal: Principal,
        action: str,
        resource_arn: str,
        context: Mapping[str, object] | None = None,
        resource_policy: str | Mapping[str, object] | PolicyDocument | None = None,
    ) -> Decision:
        """May `principal` do `action` on `resource_arn`? Root may do everything."""
        if principal.kind is PrincipalKind.ROOT:
            return Decision(True, Reason.ROOT)
        role = self._role_of(principal)
        now = self._clock()
        facts = access.request_facts(principal, role, context or {}, now)
        named_resource = None
        if resource_policy is not None:
            document = (
                resource_policy
                if isinstance(resource_policy, PolicyDocument)
                else self.parse_policy(resource_policy, PolicyKind.RESOURCE)
            )
            named_resource = NamedPolicy("resource-policy", document)
        return evaluate(
            self._policies_for(principal, role, action),
            action,
            resource_arn,
            facts,
            who=access.requester(principal, role),
            resource_policy=named_resource,
        )

    def facts(self, principal: Principal | None, context: Mapping[str, object] | None) -> Facts:
        """The condition keys a policy sees for a request (no principal: a service's)."""
        if principal is None:
            return access.context_facts(context or {})
        return access.request_facts(
            principal, self._role_of(principal), context or {}, self._clock()
        )

    def requester(self, principal: Principal) -> Requester:
        return access.requester(principal, self._role_of(principal))

    def _role_of(self, principal: Principal) -> Role | None:
        if principal.kind is not PrincipalKind.ASSUMED_ROLE:
            return None
        return self._roles.get(principal.name.lower())

    def _policies_for(
        self, principal: Principal, role: Role | None, action: str
    ) -> tuple[NamedPolicy, ...]:
        if principal.kind is PrincipalKind.USER:
            owner: Owner = (OwnerKind.USER, principal.name.lower())
        elif role is not None:
            owner = (OwnerKind.ROLE, role.name.lower())
        else:
            return ()

        def documents() -> list[tuple[str, str]]:
            inline = [(p.policy_name, p.document) for p in self._inline.get(owner, {}).values()]
            attached = self._attached.get(owner, {})
            return inline + [(a, self._managed[a].document) for a in attached if a in self._managed]

        return self._cache.for_action(owner, action, documents)

    # -- users and keys ------------------------------------------------------------------

    def find_user(self, name: str) -> User | None:
        return self._users.get(name.lower())

    def get_user(self, name: str) -> User:
        user = self._users.get(name.lower())
        if user is None:
            raise NoSuchEntity(f"The user with name {name} cannot be found.")
        return user

    def list_users(self, path_prefix: str = "/") -> list[User]:
        return sorted(
            (u for u in self._users.values() if u.path.startswith(path_prefix)),
            key=lambda u: u.name.lower(),
        )

    async def create_user(self, name: str, path: str | None = None) -> User:
        names.check_name(name, "userName")
        path = names.check_path(path)
        async with self._lock:
            if name.lower() in self._users:
                raise EntityAlreadyExists(f"User with name {name} already exists.")
            user = User(
                name=name,
                user_id=names.new_id("AIDA", 17),
                path=path,
                arn=names.entity_arn(self.account_id, "user", path, name),
                created=self._clock(),
            )
            await self._write([Put(user)])
            self._users[name.lower()] = user
            self._rebuild()
            return user

    async def delete_user(self, name: str) -> None:
        async with self._lock:
            user = self.get_user(name)
            owner: Owner = (OwnerKind.USER, name.lower())
            if any(k.user_name.lower() == name.lower() for k in self._keys.values()):
                raise DeleteConflict("Cannot delete entity, must delete access keys first.")
            if self._inline.get(owner):
                raise DeleteConflict("Cannot delete entity, must delete policies first.")
            if self._attached.get(owner):
                raise DeleteConflict("Cannot delete entity, must detach all policies first.")
            await self._write([Delete(User, {"name": user.name})])
            del self._users[name.lower()]
            self._rebuild()

    def list_access_keys(self, user_name: str) -> list[AccessKey]:
        user = self.get_user(user_name)
        return sorted(
            (k for k in self._keys.values() if k.user_name == user.name), key=lambda k: k.created
        )

    async def create_access_key(self, user_name: str) -> AccessKey:
        async with self._lock:
            user = self.get_user(user_name)
            if len(self.list_access_keys(user.name)) >= MAX_KEYS_PER_USER:
                raise LimitExceeded(
                    f"Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS_PER_USER}"
                )
            key = AccessKey(
                access_key_id=names.new_id("AKIA", 16),
                user_name=user.name,
                secret=names.new_secret(),
                status="Active",
                created=self._clock(),
            )
            await self._write([Put(key)])
            self._keys[key.access_key_id] = key
            self._rebuild()
            return key

    async def delete_access_key(self, access_key_id: str, user_name: str) -> None:
        async with self._lock:
            user = self.get_user(user_name)
            key = self._keys.get(access_key_id)
            if key is None or key.user_name != user.name:
                raise NoSuchEntity(f"The Access Key with id {access_key_id} cannot be found.")
            await self._write([Delete(AccessKey, {"access_key_id": access_key_id})])
            del self._keys[access_key_id]
            self._rebuild()

    # -- roles ---------------------------------------------------------------------------

    def find_role(self, name: str) -> Role | None:
        return self._roles.get(name.lower())

    def get_role(self, name: str) -> Role:
        role = self._roles.get(name.lower())
        if role is None:
            raise NoSuchEntity(f"The role with name {name} cannot be found.")
        return role

    def role_by_arn(self, arn: str) -> Role | None:
        name = names.name_from_arn(arn, "role")
        role = self._roles.get(name.lower()) if name else None
        return role if role is not None and role.arn == arn else None

    def list_roles(self, path_prefix: str = "/") -> list[Role]:
        return sorted(
            (r for r in self._roles.values() if r.path.startswith(path_prefix)),
            key=lambda r: r.name.lower(),
        )

    async def create_role(
        self,
        name: str,
        trust_policy: str,
        *,
        path: str | None = None,
        description: str = "",
        max_session_duration: int | None = None,
    ) -> Role:
        names.check_name(name, "roleName")
        path = names.check_path(path)
        seconds = names.check_max_session_duration(max_session_duration)
        self.parse_policy(trust_policy, PolicyKind.RESOURCE)
        async with self._lock:
            if name.lower() in self._roles:
                raise EntityAlreadyExists(f"Role with name {name} already exists.")
            role = Role(
                name=name,
                role_id=names.new_id("AROA", 17),
                path=path,
                arn=names.entity_arn(self.account_id, "role", path, name),
                trust_policy=trust_policy,
                description=description,
                max_session_duration=seconds,
                created=self._clock(),
            )
            await self._write([Put(role)])
            self._roles[name.lower()] = role
            self._rebuild()
            return role

    async def update_trust_policy(self, name: str, trust_policy: str) -> Role:
        """UpdateAssumeRolePolicy: sessions already issued keep working until they expire."""
        self.parse_policy(trust_policy, PolicyKind.RESOURCE)
        async with self._lock:
            role = dataclasses.replace(self.get_role(name), trust_policy=trust_policy)
            await self._write([Put(role)])
            self._roles[name.lower()] = role
            self._rebuild()
            return role

    async def delete_role(self, name: str) -> None:
        async with self._lock:
            role = self.get_role(name)
            owner: Owner = (OwnerKind.ROLE, name.lower())
            if self._inline.get(owner):
                raise DeleteConflict("Cannot delete entity, must delete policies first.")
            if self._attached.get(owner):
                raise DeleteConflict("Cannot delete entity, must detach all policies first.")
            # Its sessions die with it: a new role of the same name must not revive them.
            sessions = self._sessions.of_role(name)
            changes: list[Change] = [Delete(Role, {"name": role.name})]
            changes += [Delete(RoleSession, {"access_key_id": s.access_key_id}) for s in sessions]
            await self._write(changes)
            del self._roles[name.lower()]
            for session in sessions:
                self._sessions.remove(session.access_key_id)
            self._rebuild()

    # -- inline policies -----------------------------------------------------------------

    def _owner(self, kind: OwnerKind, name: str) -> Owner:
        (self.get_user if kind is OwnerKind.USER else self.get_role)(name)
        return (kind, name.lower())

    def get_inline_policy(self, kind: OwnerKind, owner_name: str, policy_name: str) -> InlinePolicy:
        owner = self._owner(kind, owner_name)
        policy = self._inline.get(owner, {}).get(policy_name)
        if policy is None:
            raise NoSuchEntity(f"The {kind.value} policy with name {policy_name} cannot be found.")
        return policy

    def list_inline_policies(self, kind: OwnerKind, owner_name: str) -> list[str]:
        return sorted(self._inline.get(self._owner(kind, owner_name), {}))

    async def put_inline_policy(
        self, kind: OwnerKind, owner_name: str, policy_name: str, document: str
    ) -> InlinePolicy:
        names.check_name(policy_name, "policyName", 128)
        self.parse_policy(document, PolicyKind.IDENTITY)
        async with self._lock:
            owner = self._owner(kind, owner_name)
            entity = (
                self.get_user(owner_name) if kind is OwnerKind.USER else self.get_role(owner_name)
            )
            policy = InlinePolicy(kind.value, entity.name, policy_name, document)
            await self._write([Put(policy)])
            self._inline.setdefault(owner, {})[policy_name] = policy
            self._rebuild()
            return policy

    async def delete_inline_policy(
        self, kind: OwnerKind, owner_name: str, policy_name: str
    ) -> None:
        async with self._lock:
            policy = self.get_inline_policy(kind, owner_name, policy_name)
            key = {"owner_kind": kind.value, "owner_name": policy.owner_name}
            await self._write([Delete(InlinePolicy, {**key, "policy_name": policy_name})])
            del self._inline[(kind, owner_name.lower())][policy_name]
            self._rebuild()

    # -- managed policies and attachments ------------------------------------------------

    def get_policy(self, arn: str) -> ManagedPolicy:
        policy = self._managed.get(arn)
        if policy is None:
            raise NoSuchEntity(f"Policy {arn} does not exist or is not attachable.")
        return policy

    def attachment_count(self, arn: str) -> int:
        return sum(arn in attached for attached in self._attached.values())

    async def create_policy(
        self, name: str, document: str, *, path: str | None = None, description: str = ""
    ) -> ManagedPolicy:
        names.check_name(name, "policyName", 128)
        path = names.check_path(path)
        self.parse_policy(document, PolicyKind.IDENTITY)
        arn = names.entity_arn(self.account_id, "policy", path, name)
        async with self._lock:
            if any(
                p.name == name and not p.arn.startswith(AWS_POLICY_PREFIX)
                for p in self._managed.values()
            ):
                raise EntityAlreadyExists(
                    f"A policy called {name} already exists. Duplicate names are not allowed."
                )
            now = self._clock()
            policy = ManagedPolicy(
                arn=arn,
                name=name,
                policy_id=names.new_id("ANPA", 17),
                path=path,
                description=description,
                document=document,
                default_version_id="v1",
                created=now,
                updated=now,
            )
            await self._write([Put(policy)])
            self._managed[arn] = policy
            self._rebuild()
            return policy

    async def delete_policy(self, arn: str) -> None:
        async with self._lock:
            self.get_policy(arn)
            if arn.startswith(AWS_POLICY_PREFIX):
                raise ClientError(
                    f"Policy {arn} is an AWS managed policy and cannot be deleted.",
                    code="InvalidInput",
                )
            if self.attachment_count(arn):
                raise DeleteConflict("Cannot delete a policy attached to entities.")
            await self._write([Delete(ManagedPolicy, {"arn": arn})])
            del self._managed[arn]
            self._rebuild()

    def list_attached(self, kind: OwnerKind, owner_name: str) -> list[ManagedPolicy]:
        owner = self._owner(kind, owner_name)
        return [self._managed[a] for a in self._attached.get(owner, {}) if a in self._managed]

    async def attach_policy(self, kind: OwnerKind, owner_name: str, arn: str) -> None:
        async with self._lock:
            owner = self._owner(kind, owner_name)
            self.get_policy(arn)
            if arn in self._attached.get(owner, {}):
                return  # attaching twice is not an error in IAM
            entity = (
                self.get_user(owner_name) if kind is OwnerKind.USER else self.get_role(owner_name)
            )
            attachment = Attachment(kind.value, entity.name, arn)
            await self._write([Put(attachment)])
            self._attached.setdefault(owner, {})[arn] = attachment
            self._rebuild()

    async def detach_policy(self, kind: OwnerKind, owner_name: str, arn: str) -> None:
        async with self._lock:
            owner = self._owner(kind, owner_name)
            attachment = self._attached.get(owner, {}).get(arn)
            if attachment is None:
                raise NoSuchEntity(f"Policy {arn} was not found.")
            await self._write(
                [
                    Delete(
                        Attachment,
                        {
                            "owner_kind": kind.value,
                            "owner_name": attachment.owner_name,
                            "policy_arn": arn,
                        },
                    )
                ]
            )
            del self._attached[owner][arn]
            self._rebuild()

    # -- sessions (rules in `sessions.py`) -----------------------------------------------

    async def issue_role_credentials(
        self,
        role_arn: str,
        session_name: str,
        duration_s: int,
        trusted_service: str | None = None,
        *,
        caller: Principal | None = None,
        context: Mapping[str, object] | None = None,
    ) -> TemporaryCredentials:
        """Temporary credentials for a role, for a trusted service or a calling principal."""
        return await sessions.issue_role_credentials(
            self,
            role_arn,
            session_name,
            duration_s,
            trusted_service,
            caller=caller,
            context=context,
        )

    def role_trusts_service(self, role_arn: str, service: str) -> bool:
        """Does the role exist and does its trust policy let `service` assume it?"""
        return sessions.role_trusts_service(self, role_arn, service)

    async def add_session(self, session: RoleSession, *, durable: bool) -> Credential:
        role = self.get_role(session.role_name)
        async with self._lock:
            if durable:
                await self._store.write([Put(session)])
            self._sessions.add(session)
            for key_id in self._sessions.expire(self._clock()):
                self._credentials.pop(key_id, None)
            credential = Credential(
                session.access_key_id,
                session.secret,
                access.session_principal(self.account_id, role, session),
            )
            self._credentials[session.access_key_id] = credential
            return credential

    # -- write-through -------------------------------------------------------------------

    async def _write(self, changes: list[Change]) -> None:
        """Store first (durable before acknowledged); callers then change memory and
        call `_rebuild`, with no await in between, still under the lock."""
        await self._store.write(changes)

    def _rebuild(self) -> None:
        """Recompute credentials and forget cached policy cuts after a change."""
        self._credentials = access.credential_table(
            self.account_id,
            Credential(
                self._root.access_key_id, self._root.secret_access_key, self._root_principal
            ),
            self._users,
            self._keys.values(),
            self._roles,
            self._sessions,
        )
        self._cache.forget_owners()
