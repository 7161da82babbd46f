"""Parsed policies, and per owner and action the statements that can apply.

Parsing and compiling a policy happens once per distinct document. Evaluating a
request then looks only at the owner's statements whose Action/NotAction matches the
request's action (cut once per owner and action): a principal with many policies
still costs a few statement checks per request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Mapping

from lamina.iam.evaluation import NamedPolicy
from lamina.iam.policy import PolicyDocument, PolicyKind, PolicyParser

# Both caches are bounded: resource policies and action names arrive from callers.
_MAX_DOCUMENTS = 4096
_MAX_CUTS = 16_384


class PolicyCache:
    def __init__(self) -> None:
        self._parser = PolicyParser()
        self._documents: dict[tuple[str, PolicyKind], PolicyDocument] = {}
        self._owners: dict[Hashable, tuple[NamedPolicy, ...]] = {}
        self._cuts: dict[tuple[Hashable, str], tuple[NamedPolicy, ...]] = {}

    def parse(self, document: str | Mapping[str, object], kind: PolicyKind) -> PolicyDocument:
        text = document if isinstance(document, str) else json.dumps(document)
        parsed = self._documents.get((text, kind))
        if parsed is None:
            parsed = self._parser.parse(text, kind)
            if len(self._documents) >= _MAX_DOCUMENTS:
                self._documents.clear()
            self._documents[(text, kind)] = parsed
        return parsed

    def for_action(
        self,
        owner: Hashable,
        action: str,
        documents: Callable[[], Iterable[tuple[str, str]]],
    ) -> tuple[NamedPolicy, ...]:
        """`owner`'s identity policies cut to `action`; `documents` lists the owner's
        (name, document) pairs and is called only when the owner is not cached."""
        key = (owner, action.lower())
        cut = self._cuts.get(key)
        if cut is None:
            policies = self._owners.get(owner)
            if policies is None:
                policies = self._owners[owner] = tuple(
                    NamedPolicy(name, self.parse(text, PolicyKind.IDENTITY))
                    for name, text in documents()
                )
            if len(self._cuts) >= _MAX_CUTS:
                self._cuts.clear()
            cut = self._cuts[key] = tuple(
                NamedPolicy(p.name, p.document.for_action(action)) for p in policies
            )
        return cut

    def forget_owners(self) -> None:
        """Call after any change to policies or attachments."""
        self._owners.clear()
        self._cuts.clear()
