"""Identity documents: ICAO 9303 MRZ rules, reading the MRZ and visual zone from an image,
templates."""
