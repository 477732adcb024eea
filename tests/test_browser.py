"""A real Chromium through the whole admin flow, against a live server and a detached runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from bulkadmin.models import ImportJob, JobStatus
from tests.test_admin_support import PASSWORD
from tests.test_translations import french

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TIMEOUT_MS = 45_000


@pytest.fixture
def page(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls here are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not Path(CHROMIUM).exists():
        # CI installs it (.ci/run): there a missing browser fails the run instead of skipping.
        if os.environ.get("CI"):
            pytest.fail("no Chromium at /usr/bin/chromium")
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            yield page
            context.close()
        finally:
            browser.close()


def log_in(page, live_server, username: str, then: str) -> None:
    page.goto(f"{live_server.url}/admin/login/?next={then}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


def wait_for_the_end(page, badge: str, timeout: int) -> None:
    """Wait until the job page shows `badge` and has reloaded once to show what the ended job
    offers: a navigation a test starts before that reload would be aborted by it."""
    from playwright.sync_api import expect

    expect(page.locator(".bulkadmin-badge")).to_have_text(badge, timeout=timeout)
    expect(page.locator("#bulkadmin-progress")).to_have_attribute("data-polling", "false")


def team_file(tmp_path: Path, rows: str) -> Path:
    """A small users file, and the artifacts folder its screenshots go to."""
    source = tmp_path / "team.csv"
    source.write_text("username,email\n" + rows, encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    return source


def upload(page, source: Path) -> None:
    page.set_input_files("#id_file", str(source))
    page.click("input[name=_upload]")


def users_file(tmp_path: Path) -> Path:
    lines = ["username,email,first_name,last_name"]
    lines += [f"member{i:02d},member{i:02d}@example.com,Ada,Lovelace" for i in range(1, 25)]
    lines.insert(6, "bad user!,bad@example.com,Bad,Name")  # invalid: rejected by the report
    lines.insert(12, "noemail,not-an-email,No,Email")  # invalid: rejected by the report
    lines.insert(9, "kaboom,kaboom@example.com,Ka,Boom")  # valid, but refused at save time
    path = tmp_path / "new-staff.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_upload_confirm_watch_fix_and_rerun(page, live_server, knobs, tmp_path):
    from playwright.sync_api import expect

    get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    knobs(row_delay="0.08")  # slow rows, so the bar visibly moves while the runner works

    log_in(page, live_server, "root", "/admin/bulkadmin/importjob/add/")
    expect(page.locator("h1")).to_have_text("Import a file")

    # upload and read the report
    page.set_input_files("#id_file", str(users_file(tmp_path)))
    page.get_by_text("Advanced").click()  # the admin's collapsed fieldset
    page.fill("#id_workers", "2")
    page.click("input[name=_upload]")
    expect(page.locator('[data-count="invalid"]')).to_have_text("2")
    expect(page.locator('[data-count="valid"]')).to_have_text("25")
    errors = page.locator("#report-errors")
    expect(errors).to_contain_text("Enter a valid email address.")
    expect(errors).to_contain_text("Enter a valid username")
    expect(page.locator('[data-verdict="partly"]')).to_contain_text("25 of 27 rows are valid")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert ImportJob.objects.count() == 0

    # confirm, and watch the detached runner through the progress bar
    page.click("input[name=_confirm]")
    expect(page.locator(".messagelist")).to_contain_text("Importing new-staff.csv")
    job = ImportJob.objects.get()
    bar = page.locator(".bulkadmin-bar")
    expect(bar).to_have_attribute("aria-valuenow", "100", timeout=60_000)
    wait_for_the_end(page, "Finished with errors", timeout=30_000)
    expect(page.locator('[data-field="succeeded"]')).to_have_text("24")
    # kaboom, refused at save time, and the two rows the report refused: none is lost
    expect(page.locator('[data-field="failed"]')).to_have_text("3")
    failed = page.locator("#failed-rows-table")
    expect(failed).to_contain_text("receiver refused kaboom")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "job-page.png"), full_page=True)

    # correct the failed row and rerun it
    failed.locator("#row-10 a.bulkadmin-fix").click()
    expect(page.locator("#id_username")).to_have_value("kaboom")
    page.fill("#id_username", "kasimir")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("is corrected")
    page.click("input[value='Rerun the corrected row']")
    expect(page.locator(".messagelist")).to_contain_text("Rerunning 1 row of")
    wait_for_the_end(page, "Succeeded", timeout=60_000)
    expect(page.locator(".bulkadmin-bar")).to_have_attribute("aria-valuenow", "100")
    page.screenshot(path=str(ARTIFACTS / "job-page-rerun.png"), full_page=True)

    rerun = ImportJob.objects.exclude(pk=job.pk).get()
    assert rerun.parent_id == job.pk and rerun.status == JobStatus.SUCCEEDED
    assert get_user_model().objects.filter(username="kasimir", email="kaboom@example.com").exists()
    assert get_user_model().objects.filter(username__startswith="member").count() == 24


def test_no_script_from_a_file_runs_on_any_page(page, live_server, tmp_path):
    """Markup in values, in an error and in the file's name is shown as text; none of it runs."""
    from playwright.sync_api import expect

    get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    dialogs: list[str] = []

    def on_dialog(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    script, img = '<script>alert("csv")</script>', '"><img src=x onerror=alert(1)>'
    path = tmp_path / "<img src=x onerror=alert(3)>.csv"
    path.write_text(
        "username,first_name,last_name\n"
        'ann,"<script>alert(""csv"")</script>","""><img src=x onerror=alert(1)>"\n'
        "<script>alert(2)</script>,Bad,Row\n"
        'kaboom,"<script>alert(""csv"")</script>",Refused\n',
        encoding="utf-8",
    )

    log_in(page, live_server, "root", "/admin/bulkadmin/importjob/add/")
    page.set_input_files("#id_file", str(path))
    page.click("input[name=_upload]")
    expect(page.locator("#report-errors")).to_contain_text("Enter a valid username")
    expect(page.locator("body")).to_contain_text(script)
    expect(page.locator("body")).to_contain_text(img)

    page.click("input[name=_confirm]")
    wait_for_the_end(page, "Finished with errors", timeout=60_000)
    expect(page.locator("h1, h2, .breadcrumbs").first).to_be_visible()
    expect(page.locator("body")).to_contain_text("<img src=x onerror=alert(3)>.csv")
    failed = page.locator("#failed-rows-table")
    expect(failed).to_contain_text(script)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "hostile-job-page.png"), full_page=True)
    failed.locator("a.bulkadmin-fix").first.click()  # row 3, refused by the report
    expect(page.locator("#id_username")).to_have_value("<script>alert(2)</script>")
    page.goto(f"{live_server.url}/admin/bulkadmin/importjob/")
    expect(page.locator("#result_list")).to_contain_text("<img src=x onerror=alert(3)>.csv")

    assert dialogs == [], f"a script from the file ran: {dialogs}"
    user = get_user_model().objects.get(username="ann")
    assert (user.first_name, user.last_name) == (script, img)


def test_the_fix_and_retry_loop(page, live_server, knobs, tmp_path, monkeypatch):
    """Map the columns, import, correct a row and rerun it, download the other, fix it, upload it
    again, cancel and resume: the loop staff live in, end to end, passwords out of every file."""
    from playwright.sync_api import expect

    User = get_user_model()
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    log_in(page, live_server, "root", "/admin/bulkadmin/importjob/add/")
    ARTIFACTS.mkdir(exist_ok=True)

    # a file whose header is not the importer's: the mapping step, with the best guess chosen
    lines = ["User Name,E-mail,Password,Department"]
    lines += [f"staff{i:02d},staff{i:02d}@example.com,Pass-word-{i:02d}x,Ops" for i in range(1, 11)]
    lines += ["kaboom,kaboom@example.com,Kaboom-Pass-123,Ops", "nomail,not-an-email,Pass-word-99x,Ops"]
    source = tmp_path / "staff.csv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    page.set_input_files("#id_file", str(source))
    page.click("input[name=_upload]")
    expect(page.locator("h1")).to_contain_text("Match the columns of staff.csv")
    expect(page.locator("#mapping-table select").nth(0)).to_have_value("username")
    expect(page.locator("#mapping-table select").nth(1)).to_have_value("email")
    expect(page.locator("#mapping-table select").nth(3)).to_have_value("")  # Department: ignored
    expect(page.locator("#mapping-table")).not_to_contain_text("Pass-word")  # secrets masked
    page.screenshot(path=str(ARTIFACTS / "mapping.png"), full_page=True)
    page.click("input[name=_map]")
    expect(page.locator('[data-verdict="partly"]')).to_contain_text("11 of 12 rows are valid")
    page.click("input[name=_confirm]")
    wait_for_the_end(page, "Finished with errors", timeout=60_000)
    expect(page.locator('[data-field="failed"]')).to_have_text("2")
    first = ImportJob.objects.get()

    # correct one failed row in place, and rerun it
    page.locator("#row-13 a.bulkadmin-fix").click()
    page.fill("#id_email", "nomail@example.com")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("is corrected")
    page.click("input[name=_rerun_corrected]")
    wait_for_the_end(page, "Succeeded", timeout=60_000)
    rerun = ImportJob.objects.get(parent=first)
    assert User.objects.get(username="nomail").check_password("Pass-word-99x")  # sealed, carried

    # download the row still failed, fix it in the file, and upload it again
    page.goto(f"{live_server.url}/admin/bulkadmin/importjob/{first.pk}/change/")
    with page.expect_download() as info:
        page.click("text=Download failed rows (CSV)")
    fix_it = tmp_path / "fix.csv"
    info.value.save_as(str(fix_it))
    text = fix_it.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "row,username,email,errors,job" and "Pass" not in text
    assert "nomail" not in text  # in its rerun already: not offered again
    fix_it.write_text(text.replace("kaboom,", "kasimir,"))
    page.goto(f"{live_server.url}/admin/bulkadmin/importjob/add/")
    page.set_input_files("#id_file", str(fix_it))
    page.click("input[name=_upload]")
    expect(page.locator('[data-verdict="valid"]')).to_contain_text("The row is valid")
    page.click("input[name=_confirm]")
    wait_for_the_end(page, "Succeeded", timeout=60_000)
    assert User.objects.get(username="kasimir").check_password("Kaboom-Pass-123")  # kept, never seen
    third = ImportJob.objects.exclude(pk__in=[first.pk, rerun.pk]).get()
    page.goto(f"{live_server.url}/admin/bulkadmin/importjob/{first.pk}/change/")
    expect(page.locator("#row-12")).to_contain_text(f"In rerun #{third.pk}")
    expect(page.locator("#row-13")).to_contain_text(f"In rerun #{rerun.pk}")
    expect(page.locator("input[name=_rerun_all]")).to_have_count(0)

    # a slow job in small chunks: cancel it, then resume it; every row ends imported once
    monkeypatch.setenv("BULKADMIN_TEST_CHUNK_SIZE", "10")  # read by the runners it starts
    knobs(row_delay="0.1")
    slow = tmp_path / "slow.csv"
    slow.write_text("username\n" + "\n".join(f"slow{i:03d}" for i in range(60)) + "\n", encoding="utf-8")
    page.goto(f"{live_server.url}/admin/bulkadmin/importjob/add/")
    page.set_input_files("#id_file", str(slow))
    page.get_by_text("Advanced").click()  # the admin's collapsed fieldset
    page.fill("#id_workers", "1")
    page.click("input[name=_upload]")
    page.click("input[name=_confirm]")
    expect(page.locator(".bulkadmin-badge")).to_have_text("Running", timeout=30_000)
    page.click("input[value='Cancel the import']")
    wait_for_the_end(page, "Cancelled", timeout=30_000)
    knobs(row_delay="0")
    cancelled = ImportJob.objects.get(source_name="slow.csv")
    assert 0 < cancelled.succeeded < 60
    page.click("input[value='Resume']")
    wait_for_the_end(page, "Succeeded", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "resumed.png"), full_page=True)
    assert User.objects.filter(username__startswith="slow").count() == 60
    assert ImportJob.objects.get(pk=cancelled.pk).succeeded == 60


def test_bulk_change_from_the_changelist_then_revert_it(page, live_server, knobs, tmp_path):
    """Select users on the changelist, change them through save() in the background, then revert
    the change from its job page: the action, its form, the job, the confirmation, the revert."""
    from django.contrib.auth.models import Group
    from playwright.sync_api import expect

    User = get_user_model()
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    Group.objects.create(name="Support")
    User.objects.bulk_create([User(username=f"member{i:02d}", password="!") for i in range(1, 131)])
    ARTIFACTS.mkdir(exist_ok=True)
    log_in(page, live_server, "root", "/admin/auth/user/%3Fis_staff__exact%3D0")

    # Django's own selection: the header checkbox, then "Select all 130 users" (a page holds 100)
    page.click("#action-toggle")
    page.click("text=Select all 130 users")
    page.select_option("select[name=action]", "bulkadmin_change")
    page.click("button[name=index]")
    expect(page.locator("h1")).to_have_text("Change 130 users through save()")
    page.select_option("#id_is_active", "false")
    page.select_option("#id_add__groups", "Support")
    page.screenshot(path=str(ARTIFACTS / "bulk-change.png"), full_page=True)
    page.click("input[value='Change them']")
    wait_for_the_end(page, "Succeeded", timeout=60_000)
    expect(page.locator("text=Revert this job")).to_be_visible()  # reloaded once ended
    expect(page.locator("#bulkadmin-progress h2")).to_have_text(
        "Bulk change of users: is_active=false; groups+Support"
    )
    page.screenshot(path=str(ARTIFACTS / "bulk-change-job.png"), full_page=True)
    assert User.objects.filter(is_active=False, groups__name="Support").count() == 130
    change = ImportJob.objects.get()

    page.click("text=Revert this job")
    expect(page.locator("#content-main")).to_contain_text(
        "give the 130 users it changed their earlier values back"
    )
    page.screenshot(path=str(ARTIFACTS / "revert-confirmation.png"), full_page=True)

    # the rest in dark mode, at a phone's width and in French: nothing wider than the screen
    page.emulate_media(color_scheme="dark")
    page.set_viewport_size({"width": 390, "height": 844})
    page.set_extra_http_headers({"Accept-Language": "fr"})
    page.reload()
    expect(page.locator("h1")).to_have_text(french("Are you sure?"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(ARTIFACTS / "revert-confirmation-dark-phone.png"), full_page=True)
    page.get_by_role("button", name=french("Yes, revert it")).click()
    wait_for_the_end(page, french("Succeeded"), timeout=60_000)
    expect(page.locator(".bulkadmin-reverts")).to_contain_text(f"{french('Reverts')} #{change.pk}")
    assert User.objects.filter(is_active=True, groups=None, username__startswith="member").count() == 130
    expect(page.get_by_role("button", name=french("Cancel the import"))).to_have_count(0)  # reloaded
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(ARTIFACTS / "revert-job-dark-phone.png"), full_page=True)
    page.goto(f"{live_server.url}/admin/bulkadmin/importjob/{change.pk}/change/")
    expect(page.locator(".bulkadmin-reverts")).to_contain_text(french("Reverted by"))
    expect(page.get_by_role("link", name=french("Revert this job"))).to_have_count(0)


class RecordingLauncher:
    """Records the jobs the admin hands off; the test runs them itself, in this process."""

    runs_in_foreground = True

    def __init__(self) -> None:
        self.jobs: list[int] = []

    def __call__(self, job: ImportJob) -> None:
        self.jobs.append(job.pk)


def test_a_staff_member_walks_their_import_in_light_dark_and_on_a_phone(
    page, live_server, tmp_path, monkeypatch
):
    """Not a superuser: the upload, the job (run here, so its emails land in this test's outbox),
    the starter's email, the history of each imported user, the links both ways, and only their
    own jobs; every page without horizontal scroll in light and dark mode and at 390 px."""
    from django.core import mail
    from playwright.sync_api import expect

    from bulkadmin import launch
    from bulkadmin.engine import JobRunner
    from tests.test_admin_support import IMPORT_PERMS, make_user

    launcher = RecordingLauncher()
    monkeypatch.setitem(launch.LAUNCHERS, "subprocess", launcher)

    clerk = make_user("clerk", perms=(*IMPORT_PERMS, "auth.view_user", "auth.change_user"))
    other = make_user("other", perms=IMPORT_PERMS)
    theirs = ImportJob.objects.create(
        importer="bulkadmin.importers.users.UserImporter", source_name="theirs.csv", created_by=other
    )
    source = team_file(tmp_path, "ada,ada@example.com\nbob,bob@example.com\ncyd,\n")

    log_in(page, live_server, "clerk", "/admin/bulkadmin/importjob/add/")
    upload(page, source)
    page.click("input[name=_confirm]")
    job = ImportJob.objects.get(created_by=clerk)
    assert launcher.jobs == [job.pk]
    job = JobRunner(job.pk, workers=1).run()  # the runner the launcher would start, in this process
    assert job.succeeded == 3, (job.status, job.error, job.total)
    (email,) = mail.outbox
    assert (
        email.to == ["clerk@example.com"]
        and email.subject == f"Import #{job.pk} succeeded: 3 succeeded, 0 failed"
    )
    assert f"{live_server.url}/admin/bulkadmin/importjob/{job.pk}/change/" in email.body

    for scheme, width in (("light", 1280), ("dark", 1280), ("dark", 390)):
        page.emulate_media(color_scheme=scheme)
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{live_server.url}/admin/bulkadmin/importjob/{job.pk}/change/")
        expect(page.locator(".bulkadmin-badge")).to_have_text("Succeeded")
        expect(page.get_by_role("link", name="Revert this job")).to_have_count(0)  # may not delete users
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(ARTIFACTS / f"staff-job-{scheme}-{width}.png"), full_page=True)

        # the job list: theirs only, never the other staff member's
        page.goto(f"{live_server.url}/admin/bulkadmin/importjob/")
        expect(page.locator("#result_list")).to_contain_text("team.csv")
        expect(page.locator("#result_list")).not_to_contain_text("theirs.csv")
        assert page.evaluate("document.documentElement.scrollWidth") <= width

        # from the job to its users, from a user back to the job, and the user's history
        page.goto(f"{live_server.url}/admin/bulkadmin/importjob/{job.pk}/change/")
        page.click("text=See the users this job created or changed")
        expect(page.locator("#result_list tbody tr")).to_have_count(3)
        page.click("#result_list >> text=ada")
        expect(page.locator(f"a[href='/admin/bulkadmin/importjob/{job.pk}/change/']")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.click("text=History")
        expect(page.locator("#change-history")).to_contain_text(f"Added by import job #{job.pk}.")
        expect(page.locator("#change-history")).to_contain_text("clerk")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.goto(f"{live_server.url}/admin/bulkadmin/importjob/{theirs.pk}/change/")
    assert "theirs.csv" not in page.content()  # another person's job: not found for this one


def test_at_the_upload_cap_staff_are_told_what_to_do_and_can_clear_their_waiting_uploads(
    page, live_server, tmp_path, settings
):
    """A report left open counts against MAX_PENDING_UPLOADS_PER_USER; Cancel, or the button the
    refusal offers, frees the slot. Light, dark and phone."""
    from playwright.sync_api import expect

    settings.BULKADMIN = {
        **settings.BULKADMIN,
        "MAX_PENDING_UPLOADS_PER_USER": 1,
        "DATA_DIR": tmp_path / "data",
    }
    get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    source = team_file(tmp_path, "ada,ada@example.com\n")

    log_in(page, live_server, "root", "/admin/bulkadmin/importjob/add/")
    upload(page, source)
    expect(page.locator('[data-count="valid"]')).to_have_text("1")
    page.click("input[name=_cancel]")  # the report's Cancel: the upload is deleted
    expect(page.locator(".messagelist")).to_contain_text(
        "The upload “team.csv” is deleted; nothing was imported."
    )

    upload(page, source)
    expect(page.locator('[data-count="valid"]')).to_have_text("1")
    page.goto(f"{live_server.url}/admin/bulkadmin/importjob/add/")  # the report left open
    upload(page, source)
    expect(page.locator(".errorlist")).to_contain_text("You have 1 report waiting for confirmation")
    page.screenshot(path=str(ARTIFACTS / "upload-cap.png"), full_page=True)
    page.emulate_media(color_scheme="dark")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(ARTIFACTS / "upload-cap-dark-phone.png"), full_page=True)

    page.click("input[name=_discard_waiting]")
    expect(page.locator(".messagelist")).to_contain_text("1 upload waiting for confirmation was deleted.")
    upload(page, source)
    expect(page.locator('[data-count="valid"]')).to_have_text("1")


def test_a_page_left_as_its_job_ends_is_not_pulled_back_by_its_reload(page, live_server):
    """The job page reloads itself once its job ends, to show what the ended job offers. A page
    the user asked for just before (here a slow one) must still open, not be aborted by it."""
    import time

    from django.utils import timezone
    from playwright.sync_api import expect

    root = get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    job = ImportJob.objects.create(
        importer="bulkadmin.importers.users.UserImporter",
        source_name="ending.csv",
        created_by=root,
        status=JobStatus.RUNNING,
        heartbeat_at=timezone.now(),
    )
    log_in(page, live_server, "root", f"/admin/bulkadmin/importjob/{job.pk}/change/")
    expect(page.locator("#bulkadmin-progress")).to_have_attribute("data-polling", "true")
    ImportJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    expect(page.locator(".bulkadmin-badge")).to_have_text("Succeeded")  # its reload is due now

    def slow_server(route) -> None:
        time.sleep(1.5)  # not a wait for a condition: a server slower than the page's reload delay
        route.continue_()

    page.route("**/admin/bulkadmin/importjob/", slow_server)
    page.goto(f"{live_server.url}/admin/bulkadmin/importjob/")
    expect(page.locator("#result_list")).to_contain_text("ending.csv")
