"""The fixed world the synthetic customers live in: countries with their jurisdictions, regions
(city, IANA timezone, postal code shape, phone prefixes), names, email domains, product categories,
the catalog and the past email campaigns. Everything here is data plus a few pure helpers."""

from __future__ import annotations

import bisect
import itertools
import unicodedata
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------
# Countries and regions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    timezone: str
    city: str
    zip_shape: str  # '#' digit, 'A' letter, anything else literal
    phone: tuple  # landline (prefixes, rest digits, grouping of the rest, separator after the prefix)
    weight: float
    locale: str | None = None  # overrides the country locale (fr-CA in Montreal)


@dataclass(frozen=True)
class Country:
    code: str  # ISO 3166-1 alpha-2
    jurisdiction: str  # EU, UK, US, CA
    weight: float
    locale: str
    names: str  # key into NAMES
    regions: tuple[Region, ...]
    calling_code: str
    trunk: str  # national trunk prefix ("0"; "" where the area code carries it, as in Italy)
    phone_styles: tuple[str, ...]  # see phones.STYLES
    mobile: tuple | None  # (prefixes, rest digits, grouping, separator after the prefix[, lead digits])
    email_domains: tuple[tuple[str, float], ...]
    street_names: tuple[str, ...]
    street_number_first: bool = True


NANP_STYLES = ("paren", "paren", "dash_intl", "dots", "intl", "dashes", "one_paren", "compact")
EURO_STYLES = ("national", "national", "intl", "intl", "dbl0", "e164")


def _r(tz, city, zip_shape, prefixes, rest, grouping, weight, locale=None, sep=" ", lead="23456789"):
    # `lead`: digits a subscriber number may start with where the plan leaves others unassigned.
    return Region(tz, city, zip_shape, (prefixes, rest, grouping, sep, lead), weight, locale)


COUNTRIES: tuple[Country, ...] = (
    Country(
        "US", "US", 0.37, "en-US", "en",
        (
            _r("America/New_York", "New York", "100##", ("212", "646", "718", "917"), 7, "NNN-NNNN", 0.19),
            _r("America/New_York", "Boston", "021##", ("617", "857"), 7, "NNN-NNNN", 0.06),
            _r("America/New_York", "Atlanta", "303##", ("404", "678"), 7, "NNN-NNNN", 0.07),
            _r("America/New_York", "Miami", "331##", ("305", "786"), 7, "NNN-NNNN", 0.06),
            _r("America/Detroit", "Detroit", "482##", ("313",), 7, "NNN-NNNN", 0.03),
            _r("America/Chicago", "Chicago", "606##", ("312", "773"), 7, "NNN-NNNN", 0.12),
            _r("America/Chicago", "Houston", "770##", ("713", "832"), 7, "NNN-NNNN", 0.09),
            _r("America/Chicago", "Dallas", "752##", ("214", "469"), 7, "NNN-NNNN", 0.07),
            _r("America/Denver", "Denver", "802##", ("303", "720"), 7, "NNN-NNNN", 0.06),
            _r("America/Phoenix", "Phoenix", "850##", ("602", "480"), 7, "NNN-NNNN", 0.04),
            _r("America/Los_Angeles", "Los Angeles", "900##", ("213", "310", "323"), 7, "NNN-NNNN", 0.10),
            _r("America/Los_Angeles", "San Francisco", "941##", ("415", "628"), 7, "NNN-NNNN", 0.05),
            _r("America/Los_Angeles", "Seattle", "981##", ("206",), 7, "NNN-NNNN", 0.04),
            _r("America/Anchorage", "Anchorage", "995##", ("907",), 7, "NNN-NNNN", 0.005),
            _r("Pacific/Honolulu", "Honolulu", "968##", ("808",), 7, "NNN-NNNN", 0.005),
        ),
        "1", "", NANP_STYLES, None,
        (("gmail.com", 0.40), ("yahoo.com", 0.14), ("outlook.com", 0.09), ("hotmail.com", 0.07),
         ("icloud.com", 0.13), ("aol.com", 0.03), ("comcast.net", 0.04), ("proton.me", 0.02)),
        ("Main St", "Oak Ave", "Maple Dr", "Elm St", "Washington Blvd", "Park Ave", "Cedar Ln", "Lake St"),
    ),
    Country(
        "CA", "CA", 0.08, "en-CA", "en",
        (
            _r("America/Toronto", "Toronto", "M5V #A#", ("416", "647"), 7, "NNN-NNNN", 0.35),
            _r("America/Toronto", "Montréal", "H2X #A#", ("514", "438"), 7, "NNN-NNNN", 0.18, "fr-CA"),
            _r("America/Toronto", "Ottawa", "K1P #A#", ("613",), 7, "NNN-NNNN", 0.07),
            _r("America/Vancouver", "Vancouver", "V6B #A#", ("604", "778"), 7, "NNN-NNNN", 0.17),
            _r("America/Edmonton", "Calgary", "T2P #A#", ("403", "587"), 7, "NNN-NNNN", 0.11),
            _r("America/Winnipeg", "Winnipeg", "R3C #A#", ("204",), 7, "NNN-NNNN", 0.04),
            _r("America/Regina", "Regina", "S4P #A#", ("306",), 7, "NNN-NNNN", 0.02),
            _r("America/Halifax", "Halifax", "B3H #A#", ("902",), 7, "NNN-NNNN", 0.04),
            _r("America/St_Johns", "St. John's", "A1C #A#", ("709",), 7, "NNN-NNNN", 0.02),
        ),
        "1", "", NANP_STYLES, None,
        (("gmail.com", 0.40), ("hotmail.com", 0.14), ("outlook.com", 0.10), ("yahoo.ca", 0.08),
         ("icloud.com", 0.10), ("shaw.ca", 0.05), ("rogers.com", 0.05), ("videotron.ca", 0.03),
         ("sympatico.ca", 0.05)),
        ("King St W", "Queen St E", "Rue Sainte-Catherine", "Robson St", "Yonge St", "Bank St"),
    ),
    Country(
        "GB", "UK", 0.14, "en-GB", "gb",
        (
            _r("Europe/London", "London", "SW1A #AA", ("20",), 8, "NNNN NNNN", 0.50, lead="378"),
            _r("Europe/London", "Manchester", "M1 #AA", ("161",), 7, "NNN NNNN", 0.15, lead="2345"),
            _r("Europe/London", "Birmingham", "B1 #AA", ("121",), 7, "NNN NNNN", 0.14, lead="2345"),
            _r("Europe/London", "Leeds", "LS1 #AA", ("113",), 7, "NNN NNNN", 0.10, lead="2345"),
            _r("Europe/London", "Edinburgh", "EH1 #AA", ("131",), 7, "NNN NNNN", 0.11, lead="2345"),
        ),
        "44", "0", EURO_STYLES + ("intl0",), (("74", "75", "77", "78", "79"), 8, "NN NNNNNN", ""),
        (("gmail.com", 0.35), ("hotmail.co.uk", 0.12), ("outlook.com", 0.10), ("yahoo.co.uk", 0.10),
         ("icloud.com", 0.10), ("btinternet.com", 0.08), ("sky.com", 0.05), ("live.co.uk", 0.05)),
        ("High Street", "Station Road", "Church Lane", "Victoria Road", "Mill Lane", "Kings Road"),
    ),
    Country(
        "DE", "EU", 0.10, "de-DE", "de",
        (
            _r("Europe/Berlin", "Berlin", "10###", ("30",), 7, "NNNNNNN", 0.35),
            _r("Europe/Berlin", "Hamburg", "20###", ("40",), 7, "NNNNNNN", 0.20),
            _r("Europe/Berlin", "München", "80###", ("89",), 7, "NNNNNNN", 0.20),
            _r("Europe/Berlin", "Köln", "50###", ("221",), 7, "NNNNNNN", 0.13),
            _r("Europe/Berlin", "Frankfurt am Main", "60###", ("69",), 7, "NNNNNNN", 0.12),
        ),
        "49", "0", EURO_STYLES + ("intl0", "slash"), (("151", "152", "160", "170", "176"), 8, "NNNNNNNN", " "),
        (("gmail.com", 0.25), ("gmx.de", 0.20), ("web.de", 0.20), ("t-online.de", 0.10), ("outlook.de", 0.05),
         ("icloud.com", 0.05), ("posteo.de", 0.03), ("freenet.de", 0.03)),
        ("Hauptstraße", "Bahnhofstraße", "Gartenweg", "Schillerstraße", "Lindenallee", "Goethestraße"),
        street_number_first=False,
    ),
    Country(
        "FR", "EU", 0.08, "fr-FR", "fr",
        (
            _r("Europe/Paris", "Paris", "750##", ("1",), 8, "NN NN NN NN", 0.45),
            _r("Europe/Paris", "Lyon", "6900#", ("4",), 8, "NN NN NN NN", 0.18),
            _r("Europe/Paris", "Marseille", "130##", ("4",), 8, "NN NN NN NN", 0.15),
            _r("Europe/Paris", "Toulouse", "310##", ("5",), 8, "NN NN NN NN", 0.12, lead="12345678"),
            _r("Europe/Paris", "Lille", "590##", ("3",), 8, "NN NN NN NN", 0.10),
        ),
        "33", "0", EURO_STYLES + ("compact",), (("6", "7"), 8, "NN NN NN NN", " ", "345678"),
        (("gmail.com", 0.35), ("orange.fr", 0.15), ("free.fr", 0.10), ("laposte.net", 0.08),
         ("hotmail.fr", 0.10), ("sfr.fr", 0.07), ("yahoo.fr", 0.05), ("icloud.com", 0.05)),
        ("rue de la Paix", "avenue Victor Hugo", "rue du Moulin", "boulevard Voltaire", "rue des Lilas"),
    ),
    Country(
        "NL", "EU", 0.04, "nl-NL", "nl",
        (
            _r("Europe/Amsterdam", "Amsterdam", "10## AA", ("20",), 7, "NNN NNNN", 0.40),
            _r("Europe/Amsterdam", "Rotterdam", "30## AA", ("10",), 7, "NNN NNNN", 0.25),
            _r("Europe/Amsterdam", "Utrecht", "35## AA", ("30",), 7, "NNN NNNN", 0.20),
            _r("Europe/Amsterdam", "Den Haag", "25## AA", ("70",), 7, "NNN NNNN", 0.15),
        ),
        "31", "0", EURO_STYLES + ("intl0",), (("6",), 8, "NNNNNNNN", " ", "12345"),
        (("gmail.com", 0.35), ("hotmail.com", 0.15), ("ziggo.nl", 0.10), ("kpnmail.nl", 0.10),
         ("outlook.com", 0.10), ("icloud.com", 0.05), ("live.nl", 0.05)),
        ("Kerkstraat", "Dorpsstraat", "Molenweg", "Prinsengracht", "Schoolstraat"),
        street_number_first=False,
    ),
    Country(
        "ES", "EU", 0.05, "es-ES", "es",
        (
            _r("Europe/Madrid", "Madrid", "280##", ("91",), 7, "N NN NN NN", 0.40, sep=""),
            _r("Europe/Madrid", "Barcelona", "080##", ("93",), 7, "N NN NN NN", 0.30, sep=""),
            _r("Europe/Madrid", "Valencia", "460##", ("96",), 7, "N NN NN NN", 0.12, sep=""),
            _r("Europe/Madrid", "Sevilla", "410##", ("95",), 7, "N NN NN NN", 0.10, sep=""),
            _r("Atlantic/Canary", "Las Palmas de Gran Canaria", "350##", ("92",), 7, "N NN NN NN", 0.08, sep="",
               lead="2345678"),
        ),
        "34", "", ("national", "national", "intl", "dbl0", "e164"), (("6",), 8, "NN NNN NNN", ""),
        (("gmail.com", 0.45), ("hotmail.es", 0.20), ("yahoo.es", 0.08), ("outlook.es", 0.10),
         ("telefonica.net", 0.05), ("icloud.com", 0.05)),
        ("Calle Mayor", "Calle del Sol", "Avenida de la Constitución", "Calle Real", "Plaza de España"),
        street_number_first=False,
    ),
    Country(
        "IT", "EU", 0.05, "it-IT", "it",
        (
            # Italian area codes keep their leading 0 after +39: it is part of the number.
            _r("Europe/Rome", "Roma", "001##", ("06",), 8, "NNNN NNNN", 0.35),
            _r("Europe/Rome", "Milano", "201##", ("02",), 8, "NNNN NNNN", 0.35),
            _r("Europe/Rome", "Napoli", "801##", ("081",), 7, "NNN NNNN", 0.15),
            _r("Europe/Rome", "Torino", "101##", ("011",), 7, "NNN NNNN", 0.15),
        ),
        "39", "", ("national", "national", "intl", "dbl0", "e164"), (("33", "34", "32"), 8, "N NNN NNNN", ""),
        (("gmail.com", 0.40), ("libero.it", 0.15), ("hotmail.it", 0.10), ("yahoo.it", 0.08),
         ("virgilio.it", 0.07), ("alice.it", 0.05), ("outlook.it", 0.05)),
        ("Via Roma", "Via Garibaldi", "Corso Italia", "Via Dante", "Via Manzoni"),
        street_number_first=False,
    ),
    Country(
        "IE", "EU", 0.02, "en-IE", "ie",
        (
            _r("Europe/Dublin", "Dublin", "D0# A###", ("1",), 7, "NNN NNNN", 0.70),
            _r("Europe/Dublin", "Cork", "T12 A###", ("21",), 7, "NNN NNNN", 0.30),
        ),
        "353", "0", EURO_STYLES, (("83", "85", "86", "87"), 7, "NNN NNNN", " "),
        (("gmail.com", 0.40), ("hotmail.com", 0.15), ("eircom.net", 0.10), ("outlook.com", 0.10),
         ("icloud.com", 0.10), ("yahoo.ie", 0.05)),
        ("Main Street", "Church Road", "O'Connell Street", "Grafton Street", "Patrick Street"),
    ),
    Country(
        "SE", "EU", 0.015, "sv-SE", "nordic",
        (_r("Europe/Stockholm", "Stockholm", "111 ##", ("8",), 7, "NNN NN NN", 0.7, sep="-"),
         _r("Europe/Stockholm", "Göteborg", "411 ##", ("31",), 7, "NNN NN NN", 0.3, sep="-")),
        "46", "0", EURO_STYLES, (("70", "72", "73"), 7, "NNN NN NN", "-"),
        (("gmail.com", 0.5), ("hotmail.com", 0.15), ("outlook.com", 0.10), ("telia.com", 0.10), ("icloud.com", 0.1)),
        ("Storgatan", "Drottninggatan", "Kungsgatan"), street_number_first=False,
    ),
    Country(
        "PL", "EU", 0.02, "pl-PL", "pl",
        (_r("Europe/Warsaw", "Warszawa", "00-###", ("22",), 7, "NNN NN NN", 0.6),
         _r("Europe/Warsaw", "Kraków", "31-###", ("12",), 7, "NNN NN NN", 0.4)),
        "48", "", ("national", "intl", "intl", "dbl0", "e164"), (("50", "51", "60", "69"), 7, "N NNN NNN", ""),
        (("gmail.com", 0.4), ("wp.pl", 0.2), ("onet.pl", 0.15), ("o2.pl", 0.1), ("outlook.com", 0.1)),
        ("ul. Marszałkowska", "ul. Floriańska", "ul. Długa"), street_number_first=False,
    ),
    Country(
        "BE", "EU", 0.015, "nl-BE", "nl",
        (_r("Europe/Brussels", "Bruxelles", "10#0", ("2",), 7, "NNN NN NN", 0.55, "fr-BE", lead="2345678"),
         _r("Europe/Brussels", "Antwerpen", "20#0", ("3",), 7, "NNN NN NN", 0.45, lead="2345678")),
        "32", "0", EURO_STYLES, (("47", "48", "49"), 7, "N NN NN NN", ""),
        (("gmail.com", 0.45), ("skynet.be", 0.15), ("telenet.be", 0.15), ("hotmail.com", 0.15), ("icloud.com", 0.1)),
        ("Rue Neuve", "Meir", "Kerkstraat"), street_number_first=False,
    ),
    Country(
        "AT", "EU", 0.01, "de-AT", "de",
        (_r("Europe/Vienna", "Wien", "10#0", ("1",), 7, "NNNNNNN", 0.7),
         _r("Europe/Vienna", "Graz", "80#0", ("316",), 7, "NNNNNNN", 0.3)),
        "43", "0", EURO_STYLES + ("intl0",), (("664", "676", "699"), 7, "NNNNNNN", " "),
        (("gmail.com", 0.4), ("gmx.at", 0.2), ("aon.at", 0.15), ("outlook.com", 0.15), ("icloud.com", 0.1)),
        ("Mariahilfer Straße", "Hauptplatz", "Ringstraße"), street_number_first=False,
    ),
    Country(
        "PT", "EU", 0.01, "pt-PT", "pt",
        (_r("Europe/Lisbon", "Lisboa", "1000-###", ("21",), 7, "N NNN NNN", 0.6, sep=""),
         _r("Europe/Lisbon", "Porto", "4000-###", ("22",), 7, "N NNN NNN", 0.4, sep="")),
        "351", "", ("national", "intl", "intl", "dbl0", "e164"), (("91", "93", "96"), 7, "N NNN NNN", ""),
        (("gmail.com", 0.5), ("sapo.pt", 0.2), ("hotmail.com", 0.15), ("outlook.pt", 0.15)),
        ("Rua Augusta", "Avenida da Liberdade", "Rua de Santa Catarina"), street_number_first=False,
    ),
    Country(
        "DK", "EU", 0.005, "da-DK", "nordic",
        (_r("Europe/Copenhagen", "København", "1###", ("3",), 7, "N NN NN NN", 1.0, sep="", lead="2345689"),),
        "45", "", ("national", "intl", "intl", "dbl0", "e164"), (("2",), 7, "N NN NN NN", ""),
        (("gmail.com", 0.5), ("mail.dk", 0.2), ("hotmail.com", 0.15), ("outlook.dk", 0.15)),
        ("Strøget", "Nørregade", "Vesterbrogade"), street_number_first=False,
    ),
    Country(
        "FI", "EU", 0.005, "fi-FI", "nordic",
        (_r("Europe/Helsinki", "Helsinki", "00#00", ("9",), 7, "NNN NNNN", 1.0, lead="2345678"),),
        "358", "0", EURO_STYLES, (("40", "50"), 7, "NNN NNNN", " "),
        (("gmail.com", 0.5), ("luukku.com", 0.2), ("hotmail.com", 0.15), ("outlook.com", 0.15)),
        ("Mannerheimintie", "Aleksanterinkatu", "Esplanadi"), street_number_first=False,
    ),
)

COUNTRY_BY_CODE = {country.code: country for country in COUNTRIES}
JURISDICTIONS = ("EU", "UK", "US", "CA")
WORK_DOMAINS = ("acme-corp.com", "initech.com", "globex.com", "umbrella.co", "northwind-traders.com",
                "contoso.com", "fabrikam.net", "hooli.com", "stark-industries.com", "wayne-enterprises.com")

NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "en": (
        ("James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William", "Elizabeth",
         "David", "Barbara", "Sarah", "Daniel", "Emily", "Olivia", "Liam", "Noah", "Emma", "Ava", "Sophia",
         "Jane", "Chloe", "Jack", "Grace", "Mateo", "Priya", "Wei", "Aaliyah", "Zoë"),
        ("Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Taylor", "Anderson",
         "Thomas", "Moore", "Martin", "Jackson", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker",
         "Hall", "Young", "Doe", "O'Brien", "Nguyen", "Patel", "García", "Kim", "Tremblay", "Côté"),
    ),
    "gb": (
        ("Oliver", "George", "Harry", "Amelia", "Isla", "Poppy", "Jack", "Charlie", "Freya", "Alfie", "Olivia",
         "Emily", "Thomas", "Jessica", "Mohammed", "Sophie", "Lily", "Arthur", "Evie", "Ruby"),
        ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright",
         "Evans", "Thomas", "Roberts", "Walker", "Patel", "Khan", "Hughes", "Edwards", "Green", "Wood"),
    ),
    "ie": (
        ("Seán", "Aoife", "Ciarán", "Niamh", "Conor", "Siobhán", "Liam", "Saoirse", "Patrick", "Róisín",
         "Cian", "Orla"),
        ("Murphy", "Kelly", "O'Sullivan", "Walsh", "Byrne", "Ryan", "O'Connor", "O'Brien", "Doyle", "McCarthy",
         "Gallagher", "Kennedy"),
    ),
    "de": (
        ("Lukas", "Leon", "Finn", "Paul", "Jonas", "Hannah", "Mia", "Lena", "Lea", "Anna", "Sophie", "Marie",
         "Jürgen", "Jörg", "Käthe", "Felix", "Clara", "Maximilian", "Emilia", "Tobias"),
        ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
         "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Neumann", "Zimmermann"),
    ),
    "fr": (
        ("Louis", "Gabriel", "Jules", "Hugo", "Léa", "Chloé", "Manon", "Camille", "Emma", "Inès", "François",
         "Hélène", "Amélie", "Théo", "Julien", "Margaux"),
        ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
         "Simon", "Laurent", "Lefèvre", "Michel", "Fontaine", "Rousseau"),
    ),
    "nl": (
        ("Daan", "Sem", "Lucas", "Levi", "Emma", "Julia", "Tess", "Sophie", "Anouk", "Bram", "Jeroen", "Sanne",
         "Lotte", "Ruben"),
        ("de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Visser", "Smit", "Meijer",
         "de Boer", "Mulder", "Bos", "Peeters", "Maes"),
    ),
    "es": (
        ("Hugo", "Martín", "Lucas", "Mateo", "Lucía", "Sofía", "Martina", "María", "José", "Álvaro", "Carmen",
         "Javier", "Paula", "Alejandro"),
        ("García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez",
         "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz"),
    ),
    "it": (
        ("Leonardo", "Francesco", "Alessandro", "Lorenzo", "Sofia", "Giulia", "Aurora", "Alice", "Giorgia",
         "Matteo", "Chiara", "Niccolò", "Federica", "Davide"),
        ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco",
         "Bruno", "Gallo", "Conti", "De Luca"),
    ),
    "nordic": (
        ("Erik", "Lars", "Anders", "Johan", "Karin", "Anna", "Ingrid", "Sofia", "Mikko", "Aino", "Freja",
         "Mathias", "Björn", "Sørine"),
        ("Andersson", "Johansson", "Karlsson", "Nilsson", "Larsen", "Nielsen", "Hansen", "Virtanen",
         "Korhonen", "Jensen", "Lindqvist", "Berg", "Søndergaard", "Mäkinen"),
    ),
    "pl": (
        ("Jakub", "Kacper", "Antoni", "Zuzanna", "Julia", "Maja", "Łukasz", "Małgorzata", "Piotr", "Agnieszka"),
        ("Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kowalczyk", "Kamiński", "Lewandowski", "Zieliński"),
    ),
    "pt": (
        ("João", "Francisco", "Martim", "Maria", "Leonor", "Matilde", "Inês", "Tiago", "Beatriz", "Gonçalo"),
        ("Silva", "Santos", "Ferreira", "Pereira", "Oliveira", "Costa", "Rodrigues", "Martins", "Sousa"),
    ),
}

_FOLD = str.maketrans({"ł": "l", "Ł": "L", "ß": "ss", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "'": "", " ": "",
                       "-": ""})


def ascii_fold(text: str) -> str:
    """'Wiśniewski' -> 'Wisniewski', "O'Brien" -> 'OBrien': people type email local parts in ASCII."""
    text = text.translate(_FOLD)
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def hubspot_timezone(tz: str) -> str:
    """HubSpot's own spelling of an IANA zone: 'Europe/Berlin' -> 'europe_slash_berlin'."""
    return tz.lower().replace("/", "_slash_")


# ---------------------------------------------------------------------------------------------
# Weighted choice helpers (bisect on cumulative weights is the fastest pure-Python draw)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Weighted:
    items: tuple
    cumulative: tuple[float, ...]

    @classmethod
    def of(cls, pairs) -> Weighted:
        items, weights = zip(*pairs)
        return cls(tuple(items), tuple(itertools.accumulate(weights)))

    def draw(self, rng):
        return self.items[bisect.bisect(self.cumulative, rng.random() * self.cumulative[-1])]


COUNTRY_DRAW = Weighted.of((c, c.weight) for c in COUNTRIES)
REGION_DRAW = {c.code: Weighted.of((r, r.weight) for r in c.regions) for c in COUNTRIES}
DOMAIN_DRAW = {c.code: Weighted.of(c.email_domains) for c in COUNTRIES}

# ---------------------------------------------------------------------------------------------
# Categories and the catalog
# ---------------------------------------------------------------------------------------------

CURRENCY = "USD"
SHOP_URL = "https://shop.example.com"


def product_url(product_id: str) -> str:
    """The product's page on the shop: the catalog's url column, CDP page views and email clicks."""
    return f"{SHOP_URL}/p/{product_id}"


@dataclass(frozen=True)
class Category:
    slug: str
    title: str
    price_range: tuple[float, float]
    adjectives: tuple[str, ...]
    nouns: tuple[str, ...]


CATEGORIES: tuple[Category, ...] = (
    Category("apparel", "Apparel", (14, 140), ("Classic", "Organic", "Slim", "Relaxed", "Merino"),
             ("T-Shirt", "Hoodie", "Chinos", "Denim Jacket", "Sweater", "Polo", "Dress")),
    Category("shoes", "Shoes", (39, 220), ("Trail", "Everyday", "Leather", "Canvas", "Waterproof"),
             ("Sneakers", "Boots", "Loafers", "Sandals", "Running Shoes", "Slippers")),
    Category("accessories", "Accessories", (9, 180), ("Vintage", "Minimal", "Leather", "Woven", "Recycled"),
             ("Backpack", "Wallet", "Belt", "Sunglasses", "Scarf", "Cap", "Watch Strap")),
    Category("beauty", "Beauty", (6, 85), ("Hydrating", "Vegan", "Daily", "Soothing", "Radiance"),
             ("Face Cream", "Serum", "Lip Balm", "Shampoo", "Body Lotion", "Sunscreen")),
    Category("home", "Home", (12, 320), ("Nordic", "Linen", "Rustic", "Modern", "Handmade"),
             ("Throw Blanket", "Table Lamp", "Cushion", "Vase", "Rug", "Wall Clock", "Candle")),
    Category("kitchen", "Kitchen", (8, 260), ("Cast Iron", "Ceramic", "Bamboo", "Steel", "Chef's"),
             ("Skillet", "Knife Set", "Mug", "Cutting Board", "Teapot", "Mixing Bowl", "French Press")),
    Category("electronics", "Electronics", (19, 899), ("Wireless", "Smart", "Portable", "Noise-Cancelling", "Compact"),
             ("Headphones", "Speaker", "Charger", "Smartwatch", "Camera", "E-Reader", "Keyboard")),
    Category("outdoor", "Outdoor & Sports", (12, 450), ("Ultralight", "Pro", "Insulated", "Adventure", "Alpine"),
             ("Tent", "Water Bottle", "Yoga Mat", "Sleeping Bag", "Trekking Poles", "Bike Light")),
    Category("books", "Books", (7, 45), ("Illustrated", "Bestselling", "Collected", "Pocket", "Annotated"),
             ("Cookbook", "Novel", "Travel Guide", "Poetry", "Biography", "Field Guide")),
    Category("toys", "Toys & Games", (8, 130), ("Wooden", "Classic", "Educational", "Deluxe", "Family"),
             ("Puzzle", "Board Game", "Building Set", "Plush Bear", "Train Set", "Card Game")),
)
CATEGORY_SLUGS = tuple(category.slug for category in CATEGORIES)


@dataclass(frozen=True)
class Product:
    product_id: str
    sku: str
    name: str
    category: str
    price: float
    price_text: str  # the catalog's decimal, exactly as written
    is_active: bool
    props: dict = field(compare=False, hash=False)  # Segment product properties, shared read-only


def _price(rng, low: float, high: float) -> float:
    # Shops price at .99/.50/.00; a log-uniform draw keeps many cheap and a few expensive items.
    raw = low * (high / low) ** rng.random()
    return round(int(raw) + rng.choice((0.99, 0.99, 0.5, 0.0)), 2) or 0.99


def build_catalog(rng, products_per_category: tuple[int, int] = (24, 36), inactive_share: float = 0.04):
    """Products across every category; a few are inactive (discontinued)."""
    products: list[Product] = []
    number = 0
    for category in CATEGORIES:
        names = [f"{a} {n}" for a in category.adjectives for n in category.nouns]
        rng.shuffle(names)
        for name in names[: rng.randint(*products_per_category)]:
            number += 1
            price = _price(rng, *category.price_range)
            product_id = f"prd_{number:05d}"
            sku = f"{category.slug[:3].upper()}-{rng.randint(10000, 99999)}"
            props = {"product_id": product_id, "sku": sku, "name": name, "category": category.slug,
                     "price": price, "currency": CURRENCY}
            products.append(Product(product_id, sku, name, category.slug, price, f"{price:.2f}",
                                    rng.random() >= inactive_share, props))
    return products


class ProductPicker:
    """Draws an active product of a category; within a category a few best-sellers dominate."""

    def __init__(self, products: list[Product]):
        self.by_category: dict[str, Weighted] = {}
        for slug in CATEGORY_SLUGS:
            active = [p for p in products if p.category == slug and p.is_active]
            self.by_category[slug] = Weighted.of((p, 1.0 / (rank + 1) ** 0.8) for rank, p in enumerate(active))

    def draw(self, rng, category: str) -> Product:
        return self.by_category[category].draw(rng)


# ---------------------------------------------------------------------------------------------
# Past campaigns (the ESP history)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    name: str
    send_ms: int  # UTC epoch milliseconds when the batch started
    categories: tuple[str, ...]  # SendGrid categories
    featured_category: str  # the product category its links feature
    variants: tuple[tuple[str, float], ...]  # (variant_id, multiplier on the open probability)
    audience_share: float  # share of the eligible audience that received it


CAMPAIGN_THEMES = (
    ("weekly-picks", "Weekly picks"), ("new-arrivals", "New arrivals"), ("spring-sale", "Spring sale"),
    ("back-in-stock", "Back in stock"), ("summer-edit", "The summer edit"), ("members-offer", "Members offer"),
    ("gift-guide", "Gift guide"), ("weekend-deals", "Weekend deals"),
)


def build_campaigns(rng, start_ms: int, end_ms: int, every_days: int = 15) -> list[Campaign]:
    """One campaign roughly every `every_days` days, some with an A/B subject-line test whose B
    variant has a known effect on opens (truth for experiment analysis)."""
    day_ms = 86_400_000
    campaigns = []
    day = rng.randint(3, 8)
    total_days = (end_ms - start_ms) // day_ms
    while day < total_days - 2:
        slug, title = CAMPAIGN_THEMES[len(campaigns) % len(CAMPAIGN_THEMES)]
        # Batches go out at 14:00-16:00 UTC: morning in the Americas, afternoon in Europe.
        send_ms = start_ms + day * day_ms + rng.randint(14 * 3600, 16 * 3600) * 1000
        stamp = _ymd(send_ms)
        featured = rng.choice(CATEGORY_SLUGS)
        if rng.random() < 0.6:
            variants = (("A", 1.0), ("B", rng.choice((0.85, 1.0, 1.15, 1.3))))
        else:
            variants = (("A", 1.0),)
        campaigns.append(Campaign(f"cmp_{stamp}_{slug}", title, send_ms, ("newsletter", slug), featured,
                                  variants, round(rng.uniform(0.55, 0.95), 2)))
        day += every_days + rng.randint(-3, 3)
    return campaigns


def _ymd(epoch_ms: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch_ms / 1000, timezone.utc).strftime("%Y%m%d")
