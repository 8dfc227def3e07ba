"""The time zones of places finer than a country: states and provinces, and the area codes of
the US and Canada that span more than one zone.

Quiet hours are judged in every zone the recipient may be in. The tables hold official time (the
US Department of Transportation's boundaries, provincial, state and federal law), one IANA zone
for each clock kept in the place today (where several zones keep one clock, that of its largest
town). Unofficial local time is not counted (RELIABILITY.md: known limits).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from functools import cache

# ISO 3166-2 subdivision codes (the part after the country's hyphen) and the zones each spans.
ZONES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "US": {
        "AL": ("America/Chicago",),
        # Alaska time, and Hawaii-Aleutian time west of 169°30'W.
        "AK": ("America/Anchorage", "America/Adak"),
        # No daylight saving time, except on the Navajo Nation.
        "AZ": ("America/Phoenix", "America/Denver"),
        "AR": ("America/Chicago",),
        "CA": ("America/Los_Angeles",),
        "CO": ("America/Denver",),
        "CT": ("America/New_York",),
        "DE": ("America/New_York",),
        "DC": ("America/New_York",),
        # Central west of the Apalachicola River (the western panhandle).
        "FL": ("America/New_York", "America/Chicago"),
        "GA": ("America/New_York",),
        "HI": ("Pacific/Honolulu",),
        # Pacific north of the Salmon River.
        "ID": ("America/Boise", "America/Los_Angeles"),
        "IL": ("America/Chicago",),
        # Central in the northwest (Chicago's suburbs) and the southwest (Evansville).
        "IN": ("America/Indiana/Indianapolis", "America/Chicago"),
        "IA": ("America/Chicago",),
        # Mountain in four western counties (Sherman, Wallace, Greeley, Hamilton).
        "KS": ("America/Chicago", "America/Denver"),
        # Central in the western half.
        "KY": ("America/Kentucky/Louisville", "America/Chicago"),
        "LA": ("America/Chicago",),
        "ME": ("America/New_York",),
        "MD": ("America/New_York",),
        "MA": ("America/New_York",),
        # Central in the four Upper Peninsula counties on Wisconsin's border.
        "MI": ("America/Detroit", "America/Menominee"),
        "MN": ("America/Chicago",),
        "MS": ("America/Chicago",),
        "MO": ("America/Chicago",),
        "MT": ("America/Denver",),
        # Mountain in the west (the panhandle, Scottsbluff, North Platte's west).
        "NE": ("America/Chicago", "America/Denver"),
        # Mountain in West Wendover.
        "NV": ("America/Los_Angeles", "America/Denver"),
        "NH": ("America/New_York",),
        "NJ": ("America/New_York",),
        "NM": ("America/Denver",),
        "NY": ("America/New_York",),
        "NC": ("America/New_York",),
        # Mountain in the southwest (Dickinson, Bowman).
        "ND": ("America/Chicago", "America/Denver"),
        "OH": ("America/New_York",),
        "OK": ("America/Chicago",),
        # Mountain in most of Malheur County (Ontario).
        "OR": ("America/Los_Angeles", "America/Boise"),
        "PA": ("America/New_York",),
        "RI": ("America/New_York",),
        "SC": ("America/New_York",),
        # Mountain west of the Missouri River (Rapid City).
        "SD": ("America/Chicago", "America/Denver"),
        # Eastern in East Tennessee (Knoxville, Chattanooga, the Tri-Cities).
        "TN": ("America/Chicago", "America/New_York"),
        # Mountain in El Paso and Hudspeth counties.
        "TX": ("America/Chicago", "America/Denver"),
        "UT": ("America/Denver",),
        "VT": ("America/New_York",),
        "VA": ("America/New_York",),
        "WA": ("America/Los_Angeles",),
        "WV": ("America/New_York",),
        "WI": ("America/Chicago",),
        "WY": ("America/Denver",),
        # Territories, which an address may give as a state of the US.
        "AS": ("Pacific/Pago_Pago",),
        "GU": ("Pacific/Guam",),
        "MP": ("Pacific/Saipan",),
        "PR": ("America/Puerto_Rico",),
        "VI": ("America/St_Thomas",),
    },
    "CA": {
        "AB": ("America/Edmonton",),
        # Mountain in the East Kootenay; Mountain standard all year in the northeast and Creston.
        "BC": ("America/Vancouver", "America/Edmonton", "America/Fort_Nelson"),
        "MB": ("America/Winnipeg",),
        "NB": ("America/Moncton",),
        # Newfoundland time on the island and in southeastern Labrador, Atlantic in the rest.
        "NL": ("America/St_Johns", "America/Goose_Bay"),
        "NS": ("America/Halifax",),
        "NT": ("America/Yellowknife",),
        # Eastern, Central, Mountain, and Eastern standard all year on Southampton Island.
        "NU": (
            "America/Iqaluit",
            "America/Rankin_Inlet",
            "America/Cambridge_Bay",
            "America/Atikokan",
        ),
        # Central west of 90°W (Kenora); Eastern standard all year in Atikokan and Pickle Lake.
        "ON": ("America/Toronto", "America/Winnipeg", "America/Atikokan"),
        "PE": ("America/Halifax",),
        # Atlantic on the Magdalen Islands, Atlantic standard all year on the Lower North Shore.
        "QC": ("America/Toronto", "America/Halifax", "America/Blanc-Sablon"),
        # Central standard all year; Lloydminster keeps Alberta's time.
        "SK": ("America/Regina", "America/Edmonton"),
        # Mountain standard all year since 2020.
        "YT": ("America/Whitehorse",),
    },
    "AU": {
        "ACT": ("Australia/Sydney",),
        # Central time in Broken Hill; Lord Howe Island keeps its own.
        "NSW": ("Australia/Sydney", "Australia/Broken_Hill", "Australia/Lord_Howe"),
        "NT": ("Australia/Darwin",),
        "QLD": ("Australia/Brisbane",),
        "SA": ("Australia/Adelaide",),
        "TAS": ("Australia/Hobart",),
        "VIC": ("Australia/Melbourne",),
        "WA": ("Australia/Perth",),
    },
    "BR": {
        "AC": ("America/Rio_Branco",),
        "AL": ("America/Maceio",),
        "AM": ("America/Manaus", "America/Eirunepe"),
        "AP": ("America/Belem",),
        "BA": ("America/Bahia",),
        "CE": ("America/Fortaleza",),
        "DF": ("America/Sao_Paulo",),
        "ES": ("America/Sao_Paulo",),
        "GO": ("America/Sao_Paulo",),
        "MA": ("America/Fortaleza",),
        "MG": ("America/Sao_Paulo",),
        "MS": ("America/Campo_Grande",),
        "MT": ("America/Cuiaba",),
        "PA": ("America/Belem",),
        "PB": ("America/Fortaleza",),
        # Fernando de Noronha belongs to Pernambuco.
        "PE": ("America/Recife", "America/Noronha"),
        "PI": ("America/Fortaleza",),
        "PR": ("America/Sao_Paulo",),
        "RJ": ("America/Sao_Paulo",),
        "RN": ("America/Fortaleza",),
        "RO": ("America/Porto_Velho",),
        "RR": ("America/Boa_Vista",),
        "RS": ("America/Sao_Paulo",),
        "SC": ("America/Sao_Paulo",),
        "SE": ("America/Maceio",),
        "SP": ("America/Sao_Paulo",),
        "TO": ("America/Araguaina",),
    },
    "MX": {
        "AGU": ("America/Mexico_City",),
        "BCN": ("America/Tijuana",),
        "BCS": ("America/Mazatlan",),
        "CAM": ("America/Merida",),
        "CHH": ("America/Chihuahua", "America/Ciudad_Juarez", "America/Ojinaga"),
        "CHP": ("America/Mexico_City",),
        "CMX": ("America/Mexico_City",),
        # The municipalities on the US border keep US daylight saving time.
        "COA": ("America/Monterrey", "America/Matamoros"),
        "COL": ("America/Mexico_City",),
        "DUR": ("America/Monterrey",),
        "GRO": ("America/Mexico_City",),
        "GUA": ("America/Mexico_City",),
        "HID": ("America/Mexico_City",),
        "JAL": ("America/Mexico_City",),
        "MEX": ("America/Mexico_City",),
        "MIC": ("America/Mexico_City",),
        "MOR": ("America/Mexico_City",),
        # Central time in Bahía de Banderas.
        "NAY": ("America/Mazatlan", "America/Bahia_Banderas"),
        "NLE": ("America/Monterrey", "America/Matamoros"),
        "OAX": ("America/Mexico_City",),
        "PUE": ("America/Mexico_City",),
        "QUE": ("America/Mexico_City",),
        "ROO": ("America/Cancun",),
        "SIN": ("America/Mazatlan",),
        "SLP": ("America/Mexico_City",),
        "SON": ("America/Hermosillo",),
        "TAB": ("America/Mexico_City",),
        "TAM": ("America/Monterrey", "America/Matamoros"),
        "TLA": ("America/Mexico_City",),
        "VER": ("America/Mexico_City",),
        "YUC": ("America/Merida",),
        "ZAC": ("America/Mexico_City",),
    },
}

# Names and other ways people write a state, by code. Matched without case, accents, spaces or
# punctuation, so "Nuevo León", "NUEVO LEON" and "N.L." all read NLE.
NAMES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "US": {
        "AL": ("Alabama",),
        "AK": ("Alaska",),
        "AZ": ("Arizona",),
        "AR": ("Arkansas",),
        "CA": ("California",),
        "CO": ("Colorado",),
        "CT": ("Connecticut",),
        "DE": ("Delaware",),
        "DC": ("District of Columbia", "Washington D.C."),
        "FL": ("Florida",),
        "GA": ("Georgia",),
        "HI": ("Hawaii",),
        "ID": ("Idaho",),
        "IL": ("Illinois",),
        "IN": ("Indiana",),
        "IA": ("Iowa",),
        "KS": ("Kansas",),
        "KY": ("Kentucky",),
        "LA": ("Louisiana",),
        "ME": ("Maine",),
        "MD": ("Maryland",),
        "MA": ("Massachusetts",),
        "MI": ("Michigan",),
        "MN": ("Minnesota",),
        "MS": ("Mississippi",),
        "MO": ("Missouri",),
        "MT": ("Montana",),
        "NE": ("Nebraska",),
        "NV": ("Nevada",),
        "NH": ("New Hampshire",),
        "NJ": ("New Jersey",),
        "NM": ("New Mexico",),
        "NY": ("New York",),
        "NC": ("North Carolina",),
        "ND": ("North Dakota",),
        "OH": ("Ohio",),
        "OK": ("Oklahoma",),
        "OR": ("Oregon",),
        "PA": ("Pennsylvania",),
        "RI": ("Rhode Island",),
        "SC": ("South Carolina",),
        "SD": ("South Dakota",),
        "TN": ("Tennessee",),
        "TX": ("Texas",),
        "UT": ("Utah",),
        "VT": ("Vermont",),
        "VA": ("Virginia",),
        "WA": ("Washington", "Washington State"),
        "WV": ("West Virginia",),
        "WI": ("Wisconsin",),
        "WY": ("Wyoming",),
        "AS": ("American Samoa",),
        "GU": ("Guam",),
        "MP": ("Northern Mariana Islands",),
        "PR": ("Puerto Rico",),
        "VI": ("Virgin Islands", "U.S. Virgin Islands"),
    },
    "CA": {
        "AB": ("Alberta",),
        "BC": ("British Columbia", "Colombie-Britannique", "British Colombia"),
        "MB": ("Manitoba",),
        "NB": ("New Brunswick", "Nouveau-Brunswick"),
        "NL": ("Newfoundland and Labrador", "Newfoundland", "Terre-Neuve-et-Labrador", "NF"),
        "NS": ("Nova Scotia", "Nouvelle-Écosse"),
        "NT": ("Northwest Territories", "Territoires du Nord-Ouest"),
        "NU": ("Nunavut",),
        "ON": ("Ontario",),
        "PE": ("Prince Edward Island", "Île-du-Prince-Édouard", "PEI"),
        "QC": ("Quebec", "Québec", "PQ"),
        "SK": ("Saskatchewan",),
        "YT": ("Yukon", "Yukon Territory"),
    },
    "AU": {
        "ACT": ("Australian Capital Territory",),
        "NSW": ("New South Wales",),
        "NT": ("Northern Territory",),
        "QLD": ("Queensland",),
        "SA": ("South Australia",),
        "TAS": ("Tasmania",),
        "VIC": ("Victoria",),
        "WA": ("Western Australia",),
    },
    "BR": {
        "AC": ("Acre",),
        "AL": ("Alagoas",),
        "AM": ("Amazonas",),
        "AP": ("Amapá",),
        "BA": ("Bahia",),
        "CE": ("Ceará",),
        "DF": ("Distrito Federal",),
        "ES": ("Espírito Santo",),
        "GO": ("Goiás",),
        "MA": ("Maranhão",),
        "MG": ("Minas Gerais",),
        "MS": ("Mato Grosso do Sul",),
        "MT": ("Mato Grosso",),
        "PA": ("Pará",),
        "PB": ("Paraíba",),
        "PE": ("Pernambuco",),
        "PI": ("Piauí",),
        "PR": ("Paraná",),
        "RJ": ("Rio de Janeiro",),
        "RN": ("Rio Grande do Norte",),
        "RO": ("Rondônia",),
        "RR": ("Roraima",),
        "RS": ("Rio Grande do Sul",),
        "SC": ("Santa Catarina",),
        "SE": ("Sergipe",),
        "SP": ("São Paulo",),
        "TO": ("Tocantins",),
    },
    "MX": {
        "AGU": ("Aguascalientes", "AGS"),
        "BCN": ("Baja California", "BC"),
        "BCS": ("Baja California Sur",),
        "CAM": ("Campeche", "CAMP"),
        "CHH": ("Chihuahua", "CHIH"),
        "CHP": ("Chiapas", "CHIS"),
        "CMX": ("Ciudad de México", "Mexico City", "CDMX", "DF", "Distrito Federal", "DIF"),
        "COA": ("Coahuila", "Coahuila de Zaragoza", "COAH"),
        "COL": ("Colima",),
        "DUR": ("Durango", "DGO"),
        "GRO": ("Guerrero",),
        "GUA": ("Guanajuato", "GTO"),
        "HID": ("Hidalgo", "HGO"),
        "JAL": ("Jalisco",),
        "MEX": ("Estado de México", "México", "EDOMEX", "EM"),
        "MIC": ("Michoacán", "Michoacán de Ocampo", "MICH"),
        "MOR": ("Morelos",),
        "NAY": ("Nayarit",),
        "NLE": ("Nuevo León", "NL"),
        "OAX": ("Oaxaca",),
        "PUE": ("Puebla",),
        "QUE": ("Querétaro", "QRO"),
        "ROO": ("Quintana Roo", "QROO", "QR"),
        "SIN": ("Sinaloa",),
        "SLP": ("San Luis Potosí",),
        "SON": ("Sonora",),
        "TAB": ("Tabasco",),
        "TAM": ("Tamaulipas", "TAMPS"),
        "TLA": ("Tlaxcala", "TLAX"),
        "VER": ("Veracruz", "Veracruz de Ignacio de la Llave"),
        "YUC": ("Yucatán",),
        "ZAC": ("Zacatecas",),
    },
}

# The area codes of the US and Canada whose numbers keep more than one clock (official time, as
# for the states), overlays with the code they overlay. phonenumbers lists zones by area code, and
# for a few exchanges; it misses Culberson County in 915, and says Fort Nelson for any 867
# exchange it does not list, and Vancouver for Whitehorse's.
AREA_CODES: Mapping[str, tuple[str, ...]] = {
    # Yukon (Mountain standard all year), Northwest Territories and Cambridge Bay (Mountain),
    # Rankin Inlet and Resolute (Central), Iqaluit (Eastern), Coral Harbour (Eastern standard).
    "867": (
        "America/Whitehorse",
        "America/Yellowknife",
        "America/Rankin_Inlet",
        "America/Iqaluit",
        "America/Atikokan",
    ),
    # British Columbia but Vancouver's 604: see "BC" above.
    "250 236 672 778": ("America/Vancouver", "America/Edmonton", "America/Fort_Nelson"),
    # Saskatchewan, with Lloydminster on Alberta's time.
    "306 474 639": ("America/Regina", "America/Edmonton"),
    # Northwestern Ontario: Thunder Bay (Eastern), Kenora (Central), Atikokan (Eastern standard).
    "807": ("America/Toronto", "America/Winnipeg", "America/Atikokan"),
    # Eastern Quebec, with the Magdalen Islands and the Lower North Shore.
    "418 367 581": ("America/Toronto", "America/Halifax", "America/Blanc-Sablon"),
    # Newfoundland and Labrador.
    "709 879": ("America/St_Johns", "America/Goose_Bay"),
    # Alaska, with the western Aleutians.
    "907": ("America/Anchorage", "America/Adak"),
    # Idaho: the south (Mountain), the panhandle (Pacific).
    "208 986": ("America/Boise", "America/Los_Angeles"),
    # Oregon outside Portland, with Malheur County (Mountain).
    "541 458": ("America/Los_Angeles", "America/Boise"),
    # Nevada outside Las Vegas, with West Wendover (Mountain).
    "775": ("America/Los_Angeles", "America/Denver"),
    # Northern Arizona, with the Navajo Nation (daylight saving time).
    "928": ("America/Phoenix", "America/Denver"),
    # El Paso and Hudspeth counties (Mountain), Culberson County (Central).
    "915": ("America/Denver", "America/Chicago"),
    # The Dakotas, western Nebraska, northern and southern Kansas: Central, and Mountain in the
    # west (Dickinson, Rapid City, Scottsbluff, Goodland, Syracuse).
    "701": ("America/Chicago", "America/Denver"),
    "605": ("America/Chicago", "America/Denver"),
    "308": ("America/Chicago", "America/Denver"),
    "785": ("America/Chicago", "America/Denver"),
    "620": ("America/Chicago", "America/Denver"),
    # The Upper Peninsula: Marquette (Eastern), Menominee (Central).
    "906": ("America/Detroit", "America/Menominee"),
    # Indiana: Gary and Knox (Central), South Bend, Bloomington (Eastern), Evansville (Central).
    "219": ("America/Indiana/Indianapolis", "America/Chicago"),
    "574": ("America/Indiana/Indianapolis", "America/Chicago"),
    "812 930": ("America/Indiana/Indianapolis", "America/Chicago"),
    # Kentucky: Bowling Green (Central), Elizabethtown (Eastern); Albany (Central) in the east.
    "270 364": ("America/Kentucky/Louisville", "America/Chicago"),
    "606": ("America/Kentucky/Louisville", "America/Chicago"),
    # East Tennessee: Chattanooga (Eastern), Marion, Sequatchie and Bledsoe (Central).
    "423": ("America/New_York", "America/Chicago"),
    # The Florida panhandle: Tallahassee (Eastern), Pensacola (Central).
    "850 448": ("America/New_York", "America/Chicago"),
}


def _key(text: str) -> str:
    """`text` without case, accents, spaces or punctuation: how names and codes are matched."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed.casefold() if char.isalnum() and char.isascii())


def zones_of(country: str | None, state: str | None) -> frozenset[str]:
    """The zones of `state` (its ISO 3166-2 code, with or without the country's prefix, or a name)
    in `country` (ISO 3166-1 alpha-2); empty when either is missing or unknown."""
    if not country or not state:
        return frozenset()
    country = country.strip().upper()
    key = _key(state)
    prefix = _key(country)
    if key.startswith(prefix) and key not in _codes(country):
        key = key[len(prefix) :]
    code = _codes(country).get(key)
    return frozenset(ZONES[country][code]) if code is not None else frozenset()


def area_code_zones(area_code: str) -> frozenset[str]:
    """Every zone a US or Canadian area code spans, when it spans more than one; else empty."""
    return _area_codes().get(area_code, frozenset())


@cache
def _codes(country: str) -> dict[str, str]:
    """Every way `country`'s states are written (as `_key` leaves it), to the state's code."""
    found: dict[str, str] = {}
    for code, names in NAMES.get(country, {}).items():
        found.update({_key(name): code for name in names})
    # A code wins over a name that reads the same.
    found.update({_key(code): code for code in ZONES.get(country, {})})
    return found


@cache
def _area_codes() -> dict[str, frozenset[str]]:
    return {code: frozenset(zones) for codes, zones in AREA_CODES.items() for code in codes.split()}
