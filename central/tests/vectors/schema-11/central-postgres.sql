--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: skolebro_vectors_schema_11; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA skolebro_vectors_schema_11;


--
-- Name: sites_keep_records(); Type: FUNCTION; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE FUNCTION skolebro_vectors_schema_11.sites_keep_records() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'skolebro_vectors_schema_11'
    AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        IF EXISTS (SELECT 1 FROM records) THEN
            RAISE EXCEPTION 'sites cannot be truncated while records exist'
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW.site IS NOT DISTINCT FROM OLD.site THEN
            RETURN NEW;
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM records WHERE site = OLD.site AND is_current)
        OR EXISTS (SELECT 1 FROM records WHERE site = OLD.site AND NOT is_current) THEN
        RAISE EXCEPTION 'site % still has records', OLD.site
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: access_log; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.access_log (
    id bigint NOT NULL,
    at bigint NOT NULL,
    client text NOT NULL COLLATE pg_catalog."C",
    client_name text NOT NULL,
    endpoint text NOT NULL,
    filter text,
    records bigint NOT NULL,
    CONSTRAINT access_log_records_check CHECK ((records >= 0))
);


--
-- Name: access_log_id_seq; Type: SEQUENCE; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE skolebro_vectors_schema_11.access_log ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME skolebro_vectors_schema_11.access_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: access_log_sites; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.access_log_sites (
    entry bigint NOT NULL,
    site text NOT NULL COLLATE pg_catalog."C"
);


--
-- Name: audit_log; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.audit_log (
    id bigint NOT NULL,
    at bigint NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    detail text NOT NULL
);


--
-- Name: audit_log_id_seq; Type: SEQUENCE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE SEQUENCE skolebro_vectors_schema_11.audit_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: audit_log_id_seq; Type: SEQUENCE OWNED BY; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER SEQUENCE skolebro_vectors_schema_11.audit_log_id_seq OWNED BY skolebro_vectors_schema_11.audit_log.id;


--
-- Name: consumer_clients; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.consumer_clients (
    id text NOT NULL COLLATE pg_catalog."C",
    name text NOT NULL,
    scope_kind text NOT NULL,
    scope_code text NOT NULL,
    secret_salt bytea NOT NULL,
    secret_sha256 bytea NOT NULL,
    created bigint NOT NULL,
    revoked boolean DEFAULT false NOT NULL,
    CONSTRAINT consumer_clients_scope_kind_check CHECK ((scope_kind = ANY (ARRAY['county'::text, 'kommune'::text]))),
    CONSTRAINT consumer_clients_secret_salt_check CHECK ((length(secret_salt) = 16)),
    CONSTRAINT consumer_clients_secret_sha256_check CHECK ((length(secret_sha256) = 32))
);


--
-- Name: consumer_tokens; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.consumer_tokens (
    token_sha256 bytea NOT NULL,
    client text NOT NULL COLLATE pg_catalog."C",
    expires bigint NOT NULL,
    CONSTRAINT consumer_tokens_token_sha256_check CHECK ((length(token_sha256) = 32))
);


--
-- Name: device_commands; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.device_commands (
    id bigint NOT NULL,
    device text NOT NULL COLLATE pg_catalog."C",
    command text NOT NULL,
    queued bigint NOT NULL,
    delivered bigint
);


--
-- Name: device_commands_id_seq; Type: SEQUENCE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE SEQUENCE skolebro_vectors_schema_11.device_commands_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: device_commands_id_seq; Type: SEQUENCE OWNED BY; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER SEQUENCE skolebro_vectors_schema_11.device_commands_id_seq OWNED BY skolebro_vectors_schema_11.device_commands.id;


--
-- Name: device_heartbeats; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.device_heartbeats (
    device text NOT NULL COLLATE pg_catalog."C",
    at bigint NOT NULL,
    heartbeat text NOT NULL
);


--
-- Name: devices; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.devices (
    device text NOT NULL COLLATE pg_catalog."C",
    site text NOT NULL COLLATE pg_catalog."C",
    verifying_key bytea NOT NULL,
    revoked boolean DEFAULT false NOT NULL,
    next_seq bigint DEFAULT 1 NOT NULL,
    prev bytea DEFAULT decode(repeat('00'::text, 32), 'hex'::text) NOT NULL,
    CONSTRAINT devices_next_seq_check CHECK ((next_seq >= 1)),
    CONSTRAINT devices_prev_check CHECK ((length(prev) = 32)),
    CONSTRAINT devices_verifying_key_check CHECK ((length(verifying_key) = 32))
);


--
-- Name: enrollment_tokens; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.enrollment_tokens (
    token_sha256 bytea NOT NULL,
    id text NOT NULL COLLATE pg_catalog."C",
    site text NOT NULL COLLATE pg_catalog."C",
    site_name text NOT NULL,
    created bigint NOT NULL,
    expires bigint NOT NULL,
    used_by text COLLATE pg_catalog."C",
    used_at bigint,
    revoked boolean DEFAULT false NOT NULL,
    CONSTRAINT enrollment_tokens_check CHECK (((used_by IS NULL) = (used_at IS NULL))),
    CONSTRAINT enrollment_tokens_id_check CHECK ((length(id) = 16)),
    CONSTRAINT enrollment_tokens_token_sha256_check CHECK ((length(token_sha256) = 32))
);


--
-- Name: records; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.records (
    id bigint NOT NULL,
    site text NOT NULL COLLATE pg_catalog."C",
    entity text NOT NULL COLLATE pg_catalog."C",
    handle bytea NOT NULL,
    digest bytea NOT NULL,
    record json NOT NULL,
    valid_from bigint NOT NULL,
    valid_to bigint,
    is_current boolean NOT NULL,
    transaction_time bigint NOT NULL,
    identity bytea,
    renamed_to bytea,
    CONSTRAINT records_check CHECK (((valid_to IS NULL) = is_current)),
    CONSTRAINT records_digest_check CHECK ((length(digest) = 32)),
    CONSTRAINT records_entity_check CHECK ((entity = ANY (ARRAY['schools'::text, 'students'::text, 'groups'::text, 'enrollments'::text]))),
    CONSTRAINT records_handle_check CHECK ((length(handle) = 32)),
    CONSTRAINT records_identity_check CHECK (((identity IS NULL) OR (length(identity) = 32))),
    CONSTRAINT records_renamed_to_check CHECK (((renamed_to IS NULL) OR (length(renamed_to) = 32)))
);


--
-- Name: records_id_seq; Type: SEQUENCE; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE skolebro_vectors_schema_11.records ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME skolebro_vectors_schema_11.records_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: release_updates; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.release_updates (
    release text NOT NULL COLLATE pg_catalog."C",
    device text NOT NULL COLLATE pg_catalog."C",
    state text NOT NULL,
    reason text,
    at bigint NOT NULL,
    CONSTRAINT release_updates_state_check CHECK ((state = ANY (ARRAY['offered'::text, 'downloaded'::text, 'installed'::text, 'healthy'::text, 'rolled_back'::text, 'refused'::text])))
);


--
-- Name: releases; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.releases (
    id text NOT NULL COLLATE pg_catalog."C",
    major bigint NOT NULL,
    minor bigint NOT NULL,
    patch bigint NOT NULL,
    target text NOT NULL COLLATE pg_catalog."C",
    size bigint NOT NULL,
    sha256 bytea NOT NULL,
    allow_downgrade boolean NOT NULL,
    manifest bytea NOT NULL,
    created bigint NOT NULL,
    artifact_stored boolean DEFAULT false NOT NULL,
    percent smallint DEFAULT 0 NOT NULL,
    sites text DEFAULT '[]'::text NOT NULL,
    paused boolean DEFAULT false NOT NULL,
    CONSTRAINT releases_major_check CHECK ((major >= 0)),
    CONSTRAINT releases_minor_check CHECK ((minor >= 0)),
    CONSTRAINT releases_patch_check CHECK ((patch >= 0)),
    CONSTRAINT releases_percent_check CHECK (((percent >= 0) AND (percent <= 100))),
    CONSTRAINT releases_sha256_check CHECK ((length(sha256) = 32)),
    CONSTRAINT releases_size_check CHECK ((size >= 0))
);


--
-- Name: schema_version; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.schema_version (
    version integer NOT NULL
);


--
-- Name: sign_in_failures; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.sign_in_failures (
    name text NOT NULL COLLATE pg_catalog."C",
    available double precision NOT NULL,
    at bigint NOT NULL
);


--
-- Name: site_schools; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.site_schools (
    site text NOT NULL COLLATE pg_catalog."C",
    kommunenummer text NOT NULL COLLATE pg_catalog."C",
    skolenummer text COLLATE pg_catalog."C",
    organisasjonsnummer text COLLATE pg_catalog."C",
    name text NOT NULL,
    registered bigint NOT NULL,
    CONSTRAINT site_schools_check CHECK (((skolenummer IS NOT NULL) OR (organisasjonsnummer IS NOT NULL))),
    CONSTRAINT site_schools_kommunenummer_check CHECK ((length(kommunenummer) = 4)),
    CONSTRAINT site_schools_organisasjonsnummer_check CHECK ((length(organisasjonsnummer) = 9))
);


--
-- Name: sites; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.sites (
    site text NOT NULL COLLATE pg_catalog."C",
    secret bytea NOT NULL,
    CONSTRAINT sites_secret_check CHECK ((length(secret) = 32))
);


--
-- Name: transfer_windows; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.transfer_windows (
    id bigint NOT NULL,
    fylke text NOT NULL COLLATE pg_catalog."C",
    name text NOT NULL,
    opens bigint NOT NULL,
    closes bigint NOT NULL,
    created bigint NOT NULL,
    created_by text NOT NULL,
    CONSTRAINT transfer_windows_check CHECK ((closes > opens)),
    CONSTRAINT transfer_windows_fylke_check CHECK ((fylke ~ '^[0-9]{2}$'::text)),
    CONSTRAINT transfer_windows_name_check CHECK (((length(name) >= 1) AND (length(name) <= 100)))
);


--
-- Name: transfer_windows_id_seq; Type: SEQUENCE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE SEQUENCE skolebro_vectors_schema_11.transfer_windows_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: transfer_windows_id_seq; Type: SEQUENCE OWNED BY; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER SEQUENCE skolebro_vectors_schema_11.transfer_windows_id_seq OWNED BY skolebro_vectors_schema_11.transfer_windows.id;


--
-- Name: transfers; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.transfers (
    id bigint NOT NULL,
    site text NOT NULL COLLATE pg_catalog."C",
    device text NOT NULL,
    seq bigint NOT NULL,
    at bigint NOT NULL,
    snapshot boolean NOT NULL,
    added bigint NOT NULL,
    changed bigint NOT NULL,
    removed bigint NOT NULL,
    unchanged bigint NOT NULL,
    bytes bigint DEFAULT 0 NOT NULL,
    renamed bigint DEFAULT 0 NOT NULL,
    CONSTRAINT transfers_bytes_check CHECK ((bytes >= 0)),
    CONSTRAINT transfers_renamed_check CHECK ((renamed >= 0))
);


--
-- Name: transfers_id_seq; Type: SEQUENCE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE SEQUENCE skolebro_vectors_schema_11.transfers_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: transfers_id_seq; Type: SEQUENCE OWNED BY; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER SEQUENCE skolebro_vectors_schema_11.transfers_id_seq OWNED BY skolebro_vectors_schema_11.transfers.id;


--
-- Name: ui_sessions; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.ui_sessions (
    id_sha256 bytea NOT NULL,
    "user" text NOT NULL COLLATE pg_catalog."C",
    csrf text NOT NULL,
    expires bigint NOT NULL,
    CONSTRAINT ui_sessions_id_sha256_check CHECK ((length(id_sha256) = 32))
);


--
-- Name: ui_users; Type: TABLE; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TABLE skolebro_vectors_schema_11.ui_users (
    name text NOT NULL COLLATE pg_catalog."C",
    role text NOT NULL,
    kommune text,
    password_hash text NOT NULL,
    created bigint NOT NULL,
    CONSTRAINT ui_users_check CHECK (((role = 'municipality'::text) = (kommune IS NOT NULL))),
    CONSTRAINT ui_users_role_check CHECK ((role = ANY (ARRAY['operations'::text, 'municipality'::text, 'read_only'::text])))
);


--
-- Name: audit_log id; Type: DEFAULT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.audit_log ALTER COLUMN id SET DEFAULT nextval('skolebro_vectors_schema_11.audit_log_id_seq'::regclass);


--
-- Name: device_commands id; Type: DEFAULT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.device_commands ALTER COLUMN id SET DEFAULT nextval('skolebro_vectors_schema_11.device_commands_id_seq'::regclass);


--
-- Name: transfer_windows id; Type: DEFAULT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.transfer_windows ALTER COLUMN id SET DEFAULT nextval('skolebro_vectors_schema_11.transfer_windows_id_seq'::regclass);


--
-- Name: transfers id; Type: DEFAULT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.transfers ALTER COLUMN id SET DEFAULT nextval('skolebro_vectors_schema_11.transfers_id_seq'::regclass);


--
-- Data for Name: access_log; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.access_log OVERRIDING SYSTEM VALUE VALUES (1, 1780000009000, 'c-vector', 'Vitnemålsportalen', '/ims/oneroster/v1p1/students', NULL, 2);


--
-- Data for Name: access_log_sites; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.access_log_sites VALUES (1, '4601-46500');


--
-- Data for Name: audit_log; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.audit_log VALUES (1, 1780000006000, 'drift', 'release.rollout', '1.4.2-aarch64-unknown-linux-gnu', '50 %');


--
-- Data for Name: consumer_clients; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.consumer_clients VALUES ('c-vector', 'Vitnemålsportalen', 'kommune', '4601', '\x11111111111111111111111111111111', '\x2222222222222222222222222222222222222222222222222222222222222222', 1780000000000, false);


--
-- Data for Name: consumer_tokens; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.consumer_tokens VALUES ('\x3333333333333333333333333333333333333333333333333333333333333333', 'c-vector', 1780003600000);


--
-- Data for Name: device_commands; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.device_commands VALUES (1, '4601-46500-defe6330', '{"type":"resync"}', 1780000004000, 1780000005000);


--
-- Data for Name: device_heartbeats; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.device_heartbeats VALUES ('4601-46500-defe6330', 1780000005000, '{"version":"1.4.2","state":"healthy","outbox_depth":0,"outbox_bytes":0,"oldest_unacked_age_s":null,"last_export_unix_ms":1780000002000,"deviations":{"errors":0,"warnings":0},"deviation_groups":[],"held":null,"target":"aarch64-unknown-linux-gnu"}');


--
-- Data for Name: devices; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.devices VALUES ('4601-46500-defe6330', '4601-46500', '\x91a28a0b74381593a4d9469579208926afc8ad82c8839b7644359b9eba9a4b3a', false, 3, '\x0000000000000002d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1');


--
-- Data for Name: enrollment_tokens; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.enrollment_tokens VALUES ('\x7070707070707070707070707070707070707070707070707070707070707070', '7070707070707070', '4601-46500', 'Fana skule', 1780000000000, 1780086400000, '4601-46500-defe6330', 1780000001000, false);


--
-- Data for Name: records; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.records OVERRIDING SYSTEM VALUE VALUES (1, '4601-46500', 'enrollments', '\x032383ce38aa4f988282d99342676862f98f7f02daeb4672361808ba13915aca', '\x274b3040a377fd809b507af21b78c7829f0ac88607b345261fac948d3efeecf8', '{"source_key":"elev-1@46500","student":"elev-1","school":"46500","group":"46500-4B"}', 1780000002000, NULL, true, 1780000002000, NULL, NULL);
INSERT INTO skolebro_vectors_schema_11.records OVERRIDING SYSTEM VALUE VALUES (3, '4601-46500', 'groups', '\xcd1d095cadb0bde93535da396825040dfe72142f93c9298bd6d7b2526102df85', '\x592a16944417c17a42f38040cc34507ecc1864fbdea7e927f90f8af258f0fd9b', '{"source_key":"46500-4B","name":"4B","grade":"4","school":"46500","school_year":"2025/2026"}', 1780000002000, NULL, true, 1780000002000, NULL, NULL);
INSERT INTO skolebro_vectors_schema_11.records OVERRIDING SYSTEM VALUE VALUES (4, '4601-46500', 'schools', '\x500971fea6e1df44e1a94ac5217c7623d7301d5e05c630a2c9178b12a19c7408', '\xe15643a131a6fe9bc1de6ccfea04f6b0e4edc4f6fe35eb1c861fc45e1628bfb3', '{"skolenummer":"46500","organisasjonsnummer":"974600951","kommunenummer":"4601","fylkesnummer":"46","name":"Fana skule"}', 1780000002000, NULL, true, 1780000002000, NULL, NULL);
INSERT INTO skolebro_vectors_schema_11.records OVERRIDING SYSTEM VALUE VALUES (5, '4601-46500', 'students', '\x04f2b5dfc20df93b13c8c9031e69657750690a0a50d1272b050e2208a170db36', '\xc0dd25022af084f84d4042ea1126bc0f5bd8a1fcf1482140a5144e856e8810d0', '{"source_key":"elev-1","national_id":"02871662943","username":"elev-1@skule.example.no","given_name":"Åse","middle_name":null,"family_name":"Sæther","birth_date":{"year":2016,"month":7,"day":2},"gender":"Female","email":null}', 1780000002000, NULL, true, 1780000002000, NULL, NULL);
INSERT INTO skolebro_vectors_schema_11.records OVERRIDING SYSTEM VALUE VALUES (2, '4601-46500', 'enrollments', '\x745e462e0c72e9f0f049ad9ebf33dde78a058bc83fe9e7598a0f5c1f5e94e095', '\x2b2f96770f20f3b8258872247d7c1a0a04f607ee604dcbbe15c00d2ba1fc5f05', '{"source_key":"elev-2@46500","student":"elev-2","school":"46500","group":"46500-4B"}', 1780000002000, 1780000003000, false, 1780000002000, NULL, '\x94f6d92858f9cc34b9a492c5f8b5840099921598e1792cf14e120cab637da61f');
INSERT INTO skolebro_vectors_schema_11.records OVERRIDING SYSTEM VALUE VALUES (6, '4601-46500', 'students', '\xd881771fea74bc2f683ad0cd070a9650b98aa14275f6db447da58af30b0f6aee', '\xf9d4c52b847abe24e19d93cc240ce857eb3508db7109d6c247f508849bceb35f', '{"source_key":"elev-2","national_id":"02871662943","username":"elev-2@skule.example.no","given_name":"Ola","middle_name":null,"family_name":"Sæther","birth_date":{"year":2016,"month":7,"day":2},"gender":"Female","email":null}', 1780000002000, 1780000003000, false, 1780000002000, NULL, '\x6a3c59593055615661a40220920ddce9b18aa813d1e4404f3c2dd6c105fe8996');
INSERT INTO skolebro_vectors_schema_11.records OVERRIDING SYSTEM VALUE VALUES (7, '4601-46500', 'enrollments', '\x94f6d92858f9cc34b9a492c5f8b5840099921598e1792cf14e120cab637da61f', '\x126d603e21b4e8946ac9b63f9c9cd3d6a9e711bf328a20e00897537abcd6c8ea', '{"source_key":"elev-2b@46500","student":"elev-2b","school":"46500","group":"46500-4B"}', 1780000003000, NULL, true, 1780000003000, '\x745e462e0c72e9f0f049ad9ebf33dde78a058bc83fe9e7598a0f5c1f5e94e095', NULL);
INSERT INTO skolebro_vectors_schema_11.records OVERRIDING SYSTEM VALUE VALUES (8, '4601-46500', 'students', '\x6a3c59593055615661a40220920ddce9b18aa813d1e4404f3c2dd6c105fe8996', '\x731769f1bd7258279c9b21a556e583743baade80aa7a8e9f49910aca912f74c8', '{"source_key":"elev-2b","national_id":"02871662943","username":"elev-2b@skule.example.no","given_name":"Ola","middle_name":null,"family_name":"Sæther","birth_date":{"year":2016,"month":7,"day":2},"gender":"Female","email":null}', 1780000003000, NULL, true, 1780000003000, '\xd881771fea74bc2f683ad0cd070a9650b98aa14275f6db447da58af30b0f6aee', NULL);


--
-- Data for Name: release_updates; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.release_updates VALUES ('1.4.2-aarch64-unknown-linux-gnu', '4601-46500-defe6330', 'healthy', NULL, 1780000008000);


--
-- Data for Name: releases; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.releases VALUES ('1.4.2-aarch64-unknown-linux-gnu', 1, 4, 2, 'aarch64-unknown-linux-gnu', 7340032, '\xa5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5', false, '\x534b4252024e00000001040219616172636836342d756e6b6e6f776e2d6c696e75782d676e758080c003a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a50080cae2d00680e480d2060000fe40a4c2474ce1994fe832092a1f35f9ffcbfeaaa40fa7eac9a5fd623ec67b5f5f75735e6fbd688254944a08f53c49da87e92a0dbfa7584216d954a39fd4ea02', 1780000005000, true, 50, '["4601-46500"]', false);


--
-- Data for Name: schema_version; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.schema_version VALUES (1);
INSERT INTO skolebro_vectors_schema_11.schema_version VALUES (2);
INSERT INTO skolebro_vectors_schema_11.schema_version VALUES (3);
INSERT INTO skolebro_vectors_schema_11.schema_version VALUES (4);
INSERT INTO skolebro_vectors_schema_11.schema_version VALUES (5);
INSERT INTO skolebro_vectors_schema_11.schema_version VALUES (6);
INSERT INTO skolebro_vectors_schema_11.schema_version VALUES (7);
INSERT INTO skolebro_vectors_schema_11.schema_version VALUES (8);
INSERT INTO skolebro_vectors_schema_11.schema_version VALUES (9);
INSERT INTO skolebro_vectors_schema_11.schema_version VALUES (10);
INSERT INTO skolebro_vectors_schema_11.schema_version VALUES (11);


--
-- Data for Name: sign_in_failures; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--



--
-- Data for Name: site_schools; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.site_schools VALUES ('4601-46500', '4601', '46500', '974600951', 'Fana skule', 1780000001000);


--
-- Data for Name: sites; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.sites VALUES ('4601-46500', '\x5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e');


--
-- Data for Name: transfer_windows; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.transfer_windows VALUES (1, '46', 'Skulestart 2026', 1780086400000, 1780604800000, 1780000007000, 'drift');


--
-- Data for Name: transfers; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.transfers VALUES (1, '4601-46500', '4601-46500-defe6330', 1, 1780000002000, true, 6, 0, 0, 0, 1001, 0);
INSERT INTO skolebro_vectors_schema_11.transfers VALUES (2, '4601-46500', '4601-46500-defe6330', 2, 1780000003000, false, 0, 0, 0, 0, 1002, 2);


--
-- Data for Name: ui_sessions; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.ui_sessions VALUES ('\x4444444444444444444444444444444444444444444444444444444444444444', 'drift', 'csrf-vector', 1780003600000);


--
-- Data for Name: ui_users; Type: TABLE DATA; Schema: skolebro_vectors_schema_11; Owner: -
--

INSERT INTO skolebro_vectors_schema_11.ui_users VALUES ('drift', 'operations', NULL, 'placeholder, not a password hash', 1780000000000);


--
-- Name: access_log_id_seq; Type: SEQUENCE SET; Schema: skolebro_vectors_schema_11; Owner: -
--

SELECT pg_catalog.setval('skolebro_vectors_schema_11.access_log_id_seq', 1, true);


--
-- Name: audit_log_id_seq; Type: SEQUENCE SET; Schema: skolebro_vectors_schema_11; Owner: -
--

SELECT pg_catalog.setval('skolebro_vectors_schema_11.audit_log_id_seq', 1, true);


--
-- Name: device_commands_id_seq; Type: SEQUENCE SET; Schema: skolebro_vectors_schema_11; Owner: -
--

SELECT pg_catalog.setval('skolebro_vectors_schema_11.device_commands_id_seq', 1, true);


--
-- Name: records_id_seq; Type: SEQUENCE SET; Schema: skolebro_vectors_schema_11; Owner: -
--

SELECT pg_catalog.setval('skolebro_vectors_schema_11.records_id_seq', 8, true);


--
-- Name: transfer_windows_id_seq; Type: SEQUENCE SET; Schema: skolebro_vectors_schema_11; Owner: -
--

SELECT pg_catalog.setval('skolebro_vectors_schema_11.transfer_windows_id_seq', 1, true);


--
-- Name: transfers_id_seq; Type: SEQUENCE SET; Schema: skolebro_vectors_schema_11; Owner: -
--

SELECT pg_catalog.setval('skolebro_vectors_schema_11.transfers_id_seq', 2, true);


--
-- Name: access_log access_log_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.access_log
    ADD CONSTRAINT access_log_pkey PRIMARY KEY (id);


--
-- Name: access_log_sites access_log_sites_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.access_log_sites
    ADD CONSTRAINT access_log_sites_pkey PRIMARY KEY (entry, site);


--
-- Name: audit_log audit_log_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);


--
-- Name: consumer_clients consumer_clients_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.consumer_clients
    ADD CONSTRAINT consumer_clients_pkey PRIMARY KEY (id);


--
-- Name: consumer_tokens consumer_tokens_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.consumer_tokens
    ADD CONSTRAINT consumer_tokens_pkey PRIMARY KEY (token_sha256);


--
-- Name: device_commands device_commands_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.device_commands
    ADD CONSTRAINT device_commands_pkey PRIMARY KEY (id);


--
-- Name: device_heartbeats device_heartbeats_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.device_heartbeats
    ADD CONSTRAINT device_heartbeats_pkey PRIMARY KEY (device);


--
-- Name: devices devices_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.devices
    ADD CONSTRAINT devices_pkey PRIMARY KEY (device);


--
-- Name: enrollment_tokens enrollment_tokens_id_key; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.enrollment_tokens
    ADD CONSTRAINT enrollment_tokens_id_key UNIQUE (id);


--
-- Name: enrollment_tokens enrollment_tokens_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.enrollment_tokens
    ADD CONSTRAINT enrollment_tokens_pkey PRIMARY KEY (token_sha256);


--
-- Name: records records_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.records
    ADD CONSTRAINT records_pkey PRIMARY KEY (id);


--
-- Name: release_updates release_updates_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.release_updates
    ADD CONSTRAINT release_updates_pkey PRIMARY KEY (release, device, state);


--
-- Name: releases releases_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.releases
    ADD CONSTRAINT releases_pkey PRIMARY KEY (id);


--
-- Name: schema_version schema_version_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.schema_version
    ADD CONSTRAINT schema_version_pkey PRIMARY KEY (version);


--
-- Name: sign_in_failures sign_in_failures_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.sign_in_failures
    ADD CONSTRAINT sign_in_failures_pkey PRIMARY KEY (name);


--
-- Name: site_schools site_schools_kommunenummer_skolenummer_key; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.site_schools
    ADD CONSTRAINT site_schools_kommunenummer_skolenummer_key UNIQUE (kommunenummer, skolenummer);


--
-- Name: site_schools site_schools_organisasjonsnummer_key; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.site_schools
    ADD CONSTRAINT site_schools_organisasjonsnummer_key UNIQUE (organisasjonsnummer);


--
-- Name: sites sites_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.sites
    ADD CONSTRAINT sites_pkey PRIMARY KEY (site);


--
-- Name: transfer_windows transfer_windows_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.transfer_windows
    ADD CONSTRAINT transfer_windows_pkey PRIMARY KEY (id);


--
-- Name: transfers transfers_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.transfers
    ADD CONSTRAINT transfers_pkey PRIMARY KEY (id);


--
-- Name: ui_sessions ui_sessions_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.ui_sessions
    ADD CONSTRAINT ui_sessions_pkey PRIMARY KEY (id_sha256);


--
-- Name: ui_users ui_users_pkey; Type: CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.ui_users
    ADD CONSTRAINT ui_users_pkey PRIMARY KEY (name);


--
-- Name: access_log_at; Type: INDEX; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE INDEX access_log_at ON skolebro_vectors_schema_11.access_log USING btree (at);


--
-- Name: access_log_client; Type: INDEX; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE INDEX access_log_client ON skolebro_vectors_schema_11.access_log USING btree (client, id);


--
-- Name: access_log_sites_site; Type: INDEX; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE INDEX access_log_sites_site ON skolebro_vectors_schema_11.access_log_sites USING btree (site, entry);


--
-- Name: consumer_tokens_expires; Type: INDEX; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE INDEX consumer_tokens_expires ON skolebro_vectors_schema_11.consumer_tokens USING btree (expires);


--
-- Name: device_commands_device; Type: INDEX; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE INDEX device_commands_device ON skolebro_vectors_schema_11.device_commands USING btree (device, id);


--
-- Name: records_closed; Type: INDEX; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE INDEX records_closed ON skolebro_vectors_schema_11.records USING btree (site, entity, handle, valid_from) WHERE (NOT is_current);


--
-- Name: records_current; Type: INDEX; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE UNIQUE INDEX records_current ON skolebro_vectors_schema_11.records USING btree (site, entity, handle) WHERE is_current;


--
-- Name: records_current_schools; Type: INDEX; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE INDEX records_current_schools ON skolebro_vectors_schema_11.records USING btree (site) WHERE (is_current AND (entity = 'schools'::text));


--
-- Name: records_renamed; Type: INDEX; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE INDEX records_renamed ON skolebro_vectors_schema_11.records USING btree (site, entity) WHERE (is_current AND (identity IS NOT NULL));


--
-- Name: release_updates_device; Type: INDEX; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE INDEX release_updates_device ON skolebro_vectors_schema_11.release_updates USING btree (device);


--
-- Name: sign_in_failures_at; Type: INDEX; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE INDEX sign_in_failures_at ON skolebro_vectors_schema_11.sign_in_failures USING btree (at);


--
-- Name: site_schools_by_site; Type: INDEX; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE INDEX site_schools_by_site ON skolebro_vectors_schema_11.site_schools USING btree (site);


--
-- Name: transfer_windows_fylke; Type: INDEX; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE INDEX transfer_windows_fylke ON skolebro_vectors_schema_11.transfer_windows USING btree (fylke, opens);


--
-- Name: transfers_at; Type: INDEX; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE INDEX transfers_at ON skolebro_vectors_schema_11.transfers USING btree (at);


--
-- Name: transfers_device; Type: INDEX; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE INDEX transfers_device ON skolebro_vectors_schema_11.transfers USING btree (device, id);


--
-- Name: transfers_site; Type: INDEX; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE INDEX transfers_site ON skolebro_vectors_schema_11.transfers USING btree (site, id);


--
-- Name: ui_sessions_expires; Type: INDEX; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE INDEX ui_sessions_expires ON skolebro_vectors_schema_11.ui_sessions USING btree (expires);


--
-- Name: sites sites_keep_records; Type: TRIGGER; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TRIGGER sites_keep_records BEFORE DELETE OR UPDATE OF site ON skolebro_vectors_schema_11.sites FOR EACH ROW EXECUTE FUNCTION skolebro_vectors_schema_11.sites_keep_records();


--
-- Name: sites sites_keep_records_truncate; Type: TRIGGER; Schema: skolebro_vectors_schema_11; Owner: -
--

CREATE TRIGGER sites_keep_records_truncate BEFORE TRUNCATE ON skolebro_vectors_schema_11.sites FOR EACH STATEMENT EXECUTE FUNCTION skolebro_vectors_schema_11.sites_keep_records();


--
-- Name: access_log_sites access_log_sites_entry_fkey; Type: FK CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.access_log_sites
    ADD CONSTRAINT access_log_sites_entry_fkey FOREIGN KEY (entry) REFERENCES skolebro_vectors_schema_11.access_log(id) ON DELETE CASCADE;


--
-- Name: consumer_tokens consumer_tokens_client_fkey; Type: FK CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.consumer_tokens
    ADD CONSTRAINT consumer_tokens_client_fkey FOREIGN KEY (client) REFERENCES skolebro_vectors_schema_11.consumer_clients(id);


--
-- Name: release_updates release_updates_release_fkey; Type: FK CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.release_updates
    ADD CONSTRAINT release_updates_release_fkey FOREIGN KEY (release) REFERENCES skolebro_vectors_schema_11.releases(id);


--
-- Name: ui_sessions ui_sessions_user_fkey; Type: FK CONSTRAINT; Schema: skolebro_vectors_schema_11; Owner: -
--

ALTER TABLE ONLY skolebro_vectors_schema_11.ui_sessions
    ADD CONSTRAINT ui_sessions_user_fkey FOREIGN KEY ("user") REFERENCES skolebro_vectors_schema_11.ui_users(name);


--
-- PostgreSQL database dump complete
--


