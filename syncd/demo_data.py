"""Realistic, deterministic contact data for ``syncd demo`` and benchmarks.

Ukrainian, Polish and Mexican people with numbers written the way CRMs really hold them:
national and international forms, spaces, dashes, brackets, the old Mexican mobile ``1``,
a ``00`` prefix; some people have two numbers, a few numbers are invalid, and one pair of
records shares a number (a duplicate a human entered twice).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import islice

__all__ = ["DemoContact", "demo_contacts", "phone_for"]

_UA_FIRST = ["Олена", "Андрій", "Ірина", "Тарас", "Наталія", "Дмитро", "Оксана", "Богдан",
             "Юлія", "Максим", "Світлана", "Володимир", "Марія", "Олег", "Галина", "Сергій"]
_UA_LAST = ["Коваленко", "Шевченко", "Бондаренко", "Ткаченко", "Кравченко", "Олійник",
            "Мельник", "Поліщук", "Лисенко", "Руденко", "Савченко", "Петренко"]
_PL_FIRST = ["Katarzyna", "Piotr", "Agnieszka", "Tomasz", "Magdalena", "Paweł", "Joanna",
             "Michał", "Małgorzata", "Krzysztof"]
_PL_LAST = ["Nowak", "Kowalski", "Wiśniewska", "Wójcik", "Kamińska", "Lewandowski",
            "Zielińska", "Szymański", "Dąbrowska", "Woźniak"]
_MX_FIRST = ["José", "María", "Guadalupe", "Juan", "Fernanda", "Luis", "Ximena", "Carlos",
             "Sofía", "Alejandro"]
_MX_LAST = ["Hernández", "García", "Martínez", "López", "González", "Rodríguez", "Pérez",
            "Sánchez", "Ramírez", "Cruz"]
_INVALID = ["12345", "+380 00 000", "n/a", "067-123", "+48 1", "0000000000000000"]


@dataclass(frozen=True)
class _Numbering:
    """How a country's mobile numbers are drawn and written: an operator or area ``code``,
    subscriber digits up to ``digits`` in all, and the ways people type them (see :func:`_spell`)."""

    codes: tuple[str, ...]
    digits: int
    spellings: tuple[str, ...]


_NUMBERING = {
    "UA": _Numbering(("50", "63", "66", "67", "68", "73", "93", "95", "96", "97", "98", "99"), 9, (
        "+380 {code} ### ## ##", "0{code}-###-##-##", "(0{code}) *", "380{code}*",
        "+38 (0{code}) ###-##-##")),
    "PL": _Numbering(("50", "51", "53", "57", "60", "66", "69", "72", "78", "79", "88"), 9, (
        "+48 {code}# ### ###", "0048 {code}#-###-###", "+48{code}*")),
    "MX": _Numbering(("55", "33", "81", "222", "664", "998"), 10, (
        "+52 {code} * ####",
        "+52 1 {code} *",          # the old mobile prefix, still in many CRMs
        "0052{code}*")),
}


@dataclass(frozen=True)
class DemoContact:
    name: str
    phone: str | None
    phone2: str | None
    email: str | None
    country: str
    status: str = "new"


def phone_for(country: str, rnd: random.Random) -> str:
    """A valid mobile number of ``country`` (UA, PL, MX) in one of the formats people type."""
    numbering = _NUMBERING.get(country, _NUMBERING["MX"])
    code = rnd.choice(numbering.codes)
    width = numbering.digits - len(code)
    subscriber = f"{rnd.randrange(10 ** width):0{width}d}"
    return _spell(rnd.choice(numbering.spellings), code, subscriber)


def _spell(spelling: str, code: str, subscriber: str) -> str:
    """``spelling`` with ``{code}`` the operator or area code, each ``#`` the next subscriber
    digit and ``*`` as many of them as the ``#`` after it leave over."""
    spare = len(subscriber) - spelling.count("#")
    digits = iter(subscriber)
    return "".join("".join(islice(digits, spare)) if ch == "*" else next(digits) if ch == "#" else ch
                   for ch in spelling).format(code=code)


def _translit(name: str) -> str:
    table = str.maketrans("абвгґдеєжзиіїйклмнопрстуфхцчшщьюяąćęłńóśźż",
                          "abvhgdeezzyiiiklmnoprstufhccss_uaacelnoszz")
    return "".join(c for c in name.lower().translate(table) if c.isalnum())


def demo_contacts(n: int = 200, *, seed: int = 7) -> list[DemoContact]:
    """``n`` contacts (~50% UA, 30% PL, 20% MX); ~10% with two numbers, ~3% invalid,
    and records 0 and 1 share one number in two spellings (a duplicate pair)."""
    rnd = random.Random(seed)
    people: list[DemoContact] = []
    for i in range(n):
        roll = rnd.random()
        country = "UA" if roll < 0.5 else "PL" if roll < 0.8 else "MX"
        first, last = {
            "UA": (_UA_FIRST, _UA_LAST), "PL": (_PL_FIRST, _PL_LAST), "MX": (_MX_FIRST, _MX_LAST),
        }[country]
        name = f"{rnd.choice(first)} {rnd.choice(last)}"
        phone: str | None = phone_for(country, rnd)
        if rnd.random() < 0.03 and i > 1:
            phone = rnd.choice(_INVALID)
        phone2 = phone_for(country, rnd) if rnd.random() < 0.1 else None
        email = f"{_translit(name.split()[0])}.{_translit(name.split()[1])}{i}@example.com" \
            if rnd.random() < 0.7 else None
        status = rnd.choice(["new", "new", "new", "callback", "contacted"])
        people.append(DemoContact(name, phone, phone2, email, country, status))
    if n >= 2:  # the duplicate pair: same UA number typed two ways
        people[0] = DemoContact(people[0].name, "+380 67 555 12 34", None, people[0].email, "UA", "new")
        people[1] = DemoContact(people[1].name, "067-555-12-34", None, None, "UA", "new")
    return people
