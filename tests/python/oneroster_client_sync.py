"""Syncs from central's OneRoster consumer API with a OneRoster client of another ecosystem.

Driven by tests/tests/oneroster_client.rs against a running `skolebro-demo --serve`: takes a
token with the client credentials, reads every collection of the rostering service's read
side, every object by id (a teacher, term or grading period as the 404 it is, since none are
carried) and every list under a parent through the generated
`oneroster_client` models (strongmind-oneroster-client, pinned in .ci/run), then pages the
users under a filter by following each answer's `Link: rel="next"` as a syncing client
does. Any deviation exits non-zero with the reason on stderr; on success it prints one JSON
object of counts for the Rust test to check.

Environment: SKOLEBRO_CONSUMER_URL (the OneRoster base), SKOLEBRO_TOKEN_URL,
SKOLEBRO_CLIENT_ID, SKOLEBRO_CLIENT_SECRET. No national id or name is printed.
"""

import json
import os
import re
import sys
import urllib.parse
import urllib.request

import oneroster_client
from requests import HTTPError
from oneroster_client.rest import ApiException

TIMEOUT = 20  # seconds per request


def fail(reason):
    print(f"oneroster_client_sync: {reason}", file=sys.stderr)
    sys.exit(1)


def token(url, client_id, secret):
    body = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    ).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
        return json.load(answer)["access_token"]


def objects(data):
    """The objects of a deserialised answer: its one attribute, a list or a single object."""
    fields = data.to_dict()
    if len(fields) != 1:
        fail(f"{type(data).__name__} has fields {sorted(fields)}")
    (value,) = fields.values()
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def call(what, method, *args, **kwargs):
    """One request through the library: its objects, and its headers."""
    try:
        data, status, headers = method(*args, _request_timeout=TIMEOUT, **kwargs)
    except ApiException as error:
        fail(f"{what}: HTTP {error.status}: {error.body}")
    if status != 200:
        fail(f"{what}: HTTP {status}")
    return objects(data), headers


def links(headers):
    """`Link` relations to URLs."""
    found = {}
    for part in headers.get("Link", "").split(","):
        match = re.match(r'\s*<([^>]*)>\s*;\s*rel="([^"]+)"', part)
        if match:
            found[match.group(2)] = match.group(1)
    return found


def main():
    base = os.environ["SKOLEBRO_CONSUMER_URL"]
    configuration = oneroster_client.Configuration()
    configuration.host = base
    configuration.access_token = token(
        os.environ["SKOLEBRO_TOKEN_URL"],
        os.environ["SKOLEBRO_CLIENT_ID"],
        os.environ["SKOLEBRO_CLIENT_SECRET"],
    )
    client = oneroster_client.ApiClient(configuration)
    api = oneroster_client
    orgs = api.OrgsManagementApi(client)
    schools = api.SchoolsManagementApi(client)
    users = api.UsersManagementApi(client)
    students = api.StudentsManagementApi(client)
    teachers = api.TeachersManagementApi(client)
    classes = api.ClassesManagementApi(client)
    enrollments = api.EnrollmentsManagementApi(client)
    courses = api.CoursesManagementApi(client)
    sessions = api.AcademicSessionsManagementApi(client)
    terms = api.TermsManagementApi(client)
    periods = api.GradingPeriodsManagementApi(client)
    demographics = api.DemographicsManagementApi(client)
    requests = 0

    def every(what, method, *args):
        nonlocal requests
        found, _ = call(what, method, *args, limit=1000)
        requests += 1
        return found

    # Every collection.
    lists = {
        "orgs": every("orgs", orgs.get_orgs_with_http_info),
        "schools": every("schools", schools.get_schools_with_http_info),
        "users": every("users", users.get_users_with_http_info),
        "students": every("students", students.get_students_with_http_info),
        "teachers": every("teachers", teachers.get_teachers_with_http_info),
        "classes": every("classes", classes.get_classes_with_http_info),
        "enrollments": every("enrollments", enrollments.get_enrollments_with_http_info),
        "courses": every("courses", courses.get_courses_with_http_info),
        "academicSessions": every(
            "academicSessions", sessions.get_academic_sessions_with_http_info
        ),
        "terms": every("terms", terms.get_terms_with_http_info),
        "gradingPeriods": every("gradingPeriods", periods.get_grading_periods_with_http_info),
        "demographics": every("demographics", demographics.get_demographics_with_http_info),
    }
    for name in ["orgs", "users", "classes", "enrollments", "courses", "academicSessions"]:
        if not lists[name]:
            fail(f"{name} is empty")
    if [o["sourced_id"] for o in lists["orgs"]] != [o["sourced_id"] for o in lists["schools"]]:
        fail("schools differ from orgs")
    if [u["sourced_id"] for u in lists["users"]] != [u["sourced_id"] for u in lists["students"]]:
        fail("students differ from users")

    # Every object by id, and the lists under each kind of parent.
    school = lists["schools"][0]["sourced_id"]
    klass = lists["classes"][0]["sourced_id"]
    student = lists["enrollments"][0]["user"]["sourced_id"]
    course = lists["courses"][0]["sourced_id"]
    singles = [
        ("org", orgs.get_org_with_http_info, school),
        ("school", schools.get_school_with_http_info, school),
        ("user", users.get_user_with_http_info, student),
        ("student", students.get_student_with_http_info, student),
        ("class", classes.get_class_with_http_info, klass),
        ("enrollment", enrollments.get_enrollment_with_http_info,
         lists["enrollments"][0]["sourced_id"]),
        ("course", courses.get_course_with_http_info, course),
        ("academicSession", sessions.get_academic_session_with_http_info,
         lists["academicSessions"][0]["sourced_id"]),
    ]
    if lists["demographics"]:
        singles.append(("demographic", demographics.get_demographic_with_http_info,
                        lists["demographics"][0]["sourced_id"]))
    for what, method, sourced_id in singles:
        (found,), _ = call(what, method, sourced_id)
        requests += 1
        if found["sourced_id"] != sourced_id:
            fail(f"{what} {sourced_id} answered {found['sourced_id']}")
    under = {
        "schools/{id}/classes": every("school classes", classes.get_classes_for_school_with_http_info, school),
        "schools/{id}/students": every("school students", students.get_students_for_school_with_http_info, school),
        "schools/{id}/teachers": every("school teachers", teachers.get_teachers_for_school_with_http_info, school),
        "schools/{id}/enrollments": every("school enrollments", enrollments.get_enrollments_for_school_with_http_info, school),
        "schools/{id}/courses": every("school courses", courses.get_courses_for_school_with_http_info, school),
        "schools/{id}/terms": every("school terms", terms.get_terms_for_school_with_http_info, school),
        "classes/{id}/students": every("class students", students.get_students_for_class_with_http_info, klass),
        "classes/{id}/teachers": every("class teachers", teachers.get_teachers_for_class_with_http_info, klass),
        "users/{id}/classes": every("user classes", classes.get_classes_for_user_with_http_info, student),
        "students/{id}/classes": every("student classes", classes.get_classes_for_student_with_http_info, student),
        "courses/{id}/classes": every("course classes", classes.get_classes_for_course_with_http_info, course),
        "schools/{id}/classes/{id}/enrollments": every(
            "school class enrollments", enrollments.get_enrollments_for_class_in_school_with_http_info,
            school, klass),
        "schools/{id}/classes/{id}/students": every(
            "school class students", students.get_students_for_class_in_school_with_http_info,
            school, klass),
        "schools/{id}/classes/{id}/teachers": every(
            "school class teachers", teachers.get_teachers_for_class_in_school_with_http_info,
            school, klass),
    }
    for name in ["schools/{id}/classes", "schools/{id}/students", "schools/{id}/enrollments",
                 "classes/{id}/students", "users/{id}/classes", "courses/{id}/classes",
                 "schools/{id}/classes/{id}/enrollments", "schools/{id}/classes/{id}/students"]:
        if not under[name]:
            fail(f"{name} is empty")

    # Central carries no teachers, terms or grading periods: each by id, and each list under
    # one, is OneRoster's 404 in its status payload.
    nothing = "0" * 32
    for what, method in [
        ("teacher", teachers.get_teacher_with_http_info),
        ("term", terms.get_term_with_http_info),
        ("grading period", periods.get_grading_period_with_http_info),
        ("teacher classes", classes.get_classes_for_teacher_with_http_info),
        ("term classes", classes.get_classes_for_term_with_http_info),
        ("term grading periods", periods.get_grading_periods_for_term_with_http_info),
    ]:
        requests += 1
        try:
            method(nothing, _request_timeout=TIMEOUT)
        except HTTPError as error:  # the library raises for a status itself
            answer = error.response
            minor = answer.json()["imsx_CodeMinor"]["imsx_codeMinorField"][0]
            if answer.status_code != 404 or minor["imsx_codeMinorFieldValue"] != "unknownobject":
                fail(f"{what}: HTTP {answer.status_code}: {answer.text}")
        else:
            fail(f"{what} {nothing} was found")

    # A sync under a filter: page by `Link: rel="next"` until there is none. Every link
    # (`first`, `last`, and `prev` past the first page) must be absolute and keep the filter
    # and the limit, the total must hold still, and the pages must add up to exactly the
    # users the filter selects in the whole list.
    bound = "8" + "0" * 31
    expected = sorted(u["sourced_id"] for u in lists["users"] if u["sourced_id"] < bound)
    query = {"limit": 7, "offset": 0, "filter": f"sourcedId<'{bound}'"}
    synced, pages, total = [], 0, None
    while True:
        found, headers = call(f"users page {pages + 1}", users.get_users_with_http_info, **query)
        requests += 1
        pages += 1
        synced += [u["sourced_id"] for u in found]
        count = int(headers.get("X-Total-Count", "-1"))
        if total is None:
            total = count
        elif count != total:
            fail(f"X-Total-Count went from {total} to {count} on page {pages}")
        related = links(headers)
        expected_rels = set() if total <= 7 else {"first", "last"} | ({"prev"} if pages > 1 else set())
        if not expected_rels <= set(related):
            fail(f"page {pages} links {sorted(related)}, not {sorted(expected_rels)}")
        for rel, url in related.items():
            parsed = urllib.parse.urlsplit(url)
            if not parsed.scheme or not parsed.netloc:
                fail(f"a {rel} link that is not absolute: {url}")
            params = dict(urllib.parse.parse_qsl(parsed.query))
            if params.get("filter") != query["filter"] or params.get("limit") != "7":
                fail(f"the {rel} link dropped the filter or the limit: {url}")
        following = related.get("next")
        if following is None:
            break
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(following).query))
        query = {"limit": int(params["limit"]), "offset": int(params["offset"]),
                 "filter": params["filter"]}
        if pages > 1000:
            fail("more than 1000 pages")
    if sorted(synced) != expected or total != len(expected):
        fail(f"the sync read {len(synced)} users (total {total}) where the filter selects "
             f"{len(expected)}")

    print(json.dumps({
        "requests": requests,
        "lists": {name: len(found) for name, found in lists.items()},
        "under": {name: len(found) for name, found in under.items()},
        "filtered": len(synced),
        "pages": pages,
    }))


if __name__ == "__main__":
    main()
