-- The schools each site is registered with, PostgreSQL (docs/ARCHITECTURE.md, "Sites and
-- their schools"). Written when a stick's token is registered and by `skolebro-central
-- site`; a batch naming a school outside its device's site is refused, and the web
-- interface's scope and site names come from here. A school belongs to one site: its
-- kommunenummer and skolenummer, and its organisasjonsnummer, are each unique. Times are
-- Unix milliseconds. Sites registered before this table existed have no schools until an
-- operator registers them; until then their batches naming a school are refused.
CREATE TABLE site_schools (
    site                TEXT COLLATE "C" NOT NULL,
    kommunenummer       TEXT COLLATE "C" NOT NULL CHECK (length(kommunenummer) = 4),
    skolenummer         TEXT COLLATE "C",
    organisasjonsnummer TEXT COLLATE "C" CHECK (length(organisasjonsnummer) = 9),
    name                TEXT NOT NULL,
    registered          BIGINT NOT NULL,
    CHECK (skolenummer IS NOT NULL OR organisasjonsnummer IS NOT NULL),
    UNIQUE (kommunenummer, skolenummer),
    UNIQUE (organisasjonsnummer)
);

CREATE INDEX site_schools_by_site ON site_schools (site);
