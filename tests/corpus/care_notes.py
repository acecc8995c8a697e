"""Ordinary French care notes, as care managers write them: what the privacy guard must let through.

Built from templates filled with seeded random values (times, durations, amounts in euros with
French number formats, hours, dates of events, GIR grades, Zarit scores, medication doses,
benefit and invoice reference numbers, agencies' and services' acronyms, relatives without
names, places without addresses). No template names a person, an address or a birth date.
The guard's false-positive rate is measured on them (``tests/test_privacy_guard.py``).
"""

from __future__ import annotations

import random

MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre"]  # fmt: skip
RELATIVES = ["sa fille", "son fils", "son épouse", "son mari", "sa voisine", "sa belle-fille", "son neveu",
             "sa petite-fille", "l'aidant principal", "la tutrice", "sa sœur"]  # fmt: skip
SERVICES = ["le SSIAD", "le SAAD", "l'IDE", "le CCAS", "la MDPH", "la CAF", "la CARSAT", "l'EHPAD", "le CLIC",
            "l'ergothérapeute", "le kiné", "le médecin traitant", "l'assistante sociale", "l'HAD",
            "le portage de repas", "la téléassistance", "l'accueil de jour", "la plateforme de répit",
            "le mandataire judiciaire"]  # fmt: skip
DRUGS = ["Doliprane 1000 mg", "Kardégic 75 mg", "Lasilix 40 mg", "Levothyrox 75 µg", "insuline 12 UI",
         "Seresta 10 mg", "Eliquis 2,5 mg", "Xarelto 15 mg", "Donépézil 5 mg", "Modopar 125"]  # fmt: skip
TEMPLATES = [
    "Visite à domicile le {date}, {rel} présente. GIR {gir} confirmé.",
    "Passage {service} à {h}h{m:02d}, durée {dur} min.",
    "{h}h de ménage par semaine, {h2}h d'aide à la toilette.",
    "APA notifiée : {hours} h/mois, participation {eur},{c:02d} € par mois.",
    "Dossier APA n° {year}-{ref:05d} déposé le {date}.",
    "Réf. dossier MDPH {dep:02d}{year}{ref:06d}, relance faite.",
    "N° allocataire CAF {caf}, droits ouverts.",
    "Facture n° {year}{ref:06d} de {eur} € remboursée par la mutuelle.",
    "Devis travaux salle de bain : {k} {t:03d},{c:02d} €, aide ANAH {p} %.",
    "Chute le {date} à {h}h, passage aux urgences, retour à {h2}h.",
    "Hospitalisation du {date} au {date2} ({dur2} jours), sortie sans aide.",
    "Traitement : {drug} matin et soir, {drug2} le midi.",
    "Zarit {z}/88 ce jour (précédent {z2}/88), mini-Zarit {mz},5.",
    "{rel} épuisée, répit demandé {n} jours en {month}.",
    "Appel de {rel} le {day} {month} {year} : inquiète, rappel prévu sous {n} jours.",
    "Rupture de prise en charge du {date} au {date2}, SAAD repris le {date3}.",
    "Heures accordées {hours} h, réalisées {hours2} h ({p} %).",
    "Portage de repas {n} jours sur 7, {eur},{c:02d} € le repas.",
    "Plan d'aide révisé : {hours} h/mois à {eur},{c:02d} €/h (tarif {year}).",
    "Réunion de coordination avec {service} et {service2} le {date} à {h}h{m:02d}.",
    "Téléassistance installée le {date}, abonnement {eur} € par mois.",
    "Poids {kg} kg, tension {ta}/{tb}, glycémie {g},{c:02d} g/l.",
    "Entrée en accueil de jour {n} fois par semaine à partir du {day} {month}.",
    "{rel} a appelé la plateforme, ticket {ticket}.",
    "Demande de PCH déposée, n° de dossier {dep:03d}-{year}-{ref:05d}.",
    "Aide au logement : {eur} € par mois, loyer {eur2} €.",
    "Reste à charge {k} {t:03d} € par an après crédit d'impôt de 50 %.",
    "Présence {h}h-{h2}h du lundi au vendredi, {n} passages le week-end.",
    "Rendez-vous neurologue le {day} {month} à {h}h{m:02d} au CHU.",
    "Bilan ergothérapie : barres d'appui, rehausseur, douche de plain-pied.",
    "M. et Mme {ini}. vus ensemble, situation stable.",
    "Mme {ini}. refuse l'aide pour le moment ; {rel} d'accord pour un essai.",
    "GIR passé de {gir} à {gir2} entre {month} et {month2}.",
    "Kiné {n}x par semaine, séances de {dur} min, prescription du {date}.",
    "Visite de {service} prévue semaine {week}, {n} créneaux proposés.",
    "Contrat SAAD n° {contract} signé, {hours} h/mois.",
    "Solde du compte : {k} {t:03d},{c:02d} € au {date}.",
    "Né en {birth}, vit seul depuis {year2}.",
    "{p} % des heures réalisées en {month}, manque de personnel.",
    "Changement de prestataire au {date}, tarif {eur},{c:02d} € TTC/h.",
    "Courrier envoyé au département le {date}, réponse sous {n} semaines.",
    "Appel au 3977 pour signalement, suivi par {service}.",
    "Numéro vert 0 800 {a:03d} {b:03d} donné à {rel} pour la téléassistance.",
    "Code d'accès boîte à clés transmis à {service} (pas de double).",
    "Séjour de répit du {date} au {date2} à l'EHPAD, {eur} € la journée.",
    "Évaluation 360° faite, plan personnalisé remis le {date}.",
    "Rappel le {day}/{mo:02d} à {h}h, {rel} absente.",
    "Toilette {n} fois par semaine, {dur} min, {h}h-{h2}h.",
    "Dépense mensuelle {k} {t:03d} € pour {hours} h d'aide, soit {eur},{c:02d} €/h.",
    "Score MMSE {mm}/30, MoCA {mc}/30 le {date}.",
]  # fmt: skip


def care_notes(count: int = 400, seed: int = 14) -> list[str]:
    """``count`` notes, the same ones for the same seed (not a secret: S311 does not apply)."""
    rng = random.Random(seed)  # noqa: S311
    notes = []
    for i in range(count):
        day, mo, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2020, 2026)

        def date() -> str:
            d, m, y = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2020, 2026)
            return rng.choice(
                [f"{d:02d}/{m:02d}/{y}", f"{d} {MONTHS[m - 1]} {y}", f"{d:02d}/{m:02d}", f"{y}-{m:02d}-{d:02d}"]
            )

        values = {
            "date": date(), "date2": date(), "date3": date(), "day": day, "mo": mo, "month": MONTHS[mo - 1],
            "month2": rng.choice(MONTHS), "year": year, "year2": rng.randint(1990, 2024),
            "birth": rng.randint(1925, 1960), "h": rng.randint(7, 20), "h2": rng.randint(8, 21),
            "m": rng.choice([0, 15, 30, 45]), "dur": rng.choice([15, 30, 45, 60, 90]), "dur2": rng.randint(2, 30),
            "hours": rng.randint(10, 420), "hours2": rng.randint(5, 300), "eur": rng.randint(5, 2500),
            "eur2": rng.randint(200, 900), "c": rng.randint(0, 99), "k": rng.randint(1, 40), "t": rng.randint(0, 999),
            "p": rng.randint(1, 100), "gir": rng.randint(1, 6), "gir2": rng.randint(1, 6), "z": rng.randint(0, 88),
            "z2": rng.randint(0, 88), "mz": rng.randint(0, 6), "n": rng.randint(1, 7), "ref": rng.randint(0, 99999),
            "dep": rng.randint(1, 95), "caf": rng.randint(1_000_000, 9_999_999), "rel": rng.choice(RELATIVES),
            "service": rng.choice(SERVICES), "service2": rng.choice(SERVICES), "drug": rng.choice(DRUGS),
            "drug2": rng.choice(DRUGS), "kg": rng.randint(38, 110), "ta": rng.randint(10, 18), "tb": rng.randint(5, 10),
            "g": rng.randint(0, 3), "ticket": f"INC{rng.randint(100000, 999999)}", "ini": rng.choice("BDHLMRTV"),
            "week": rng.randint(1, 52), "contract": f"{year}/{rng.randint(1, 999):03d}", "a": rng.randint(100, 999),
            "b": rng.randint(100, 999), "mm": rng.randint(10, 30), "mc": rng.randint(10, 30),
        }  # fmt: skip
        notes.append(TEMPLATES[i % len(TEMPLATES)].format(**values))
    return notes
