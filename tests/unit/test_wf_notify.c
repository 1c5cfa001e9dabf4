/*  test_wf_notify - `notify:` through the whole parser (channels, events,
    secret references kept as written, every error at its place), the
    coordinator's default file, and the webhook signature against a value
    computed independently (Python's hmac). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qn_workflow.h"
#include "qn_wf_notify.h"
#include "qn_notify.h"

#define TASKS "tasks:\n  t:\n    run: 'true'\n"

//  The workflow of yaml; on failure, fails unless errors (the exact
//  error text expected) is given
static qn_workflow_t *
s_parse_or (const char *yaml, const char *errors)
{
    char *error = NULL;
    qn_workflow_t *wf = qn_workflow_parse ("wf.yaml", yaml, strlen (yaml), &error);
    if (errors && wf)
        fail_msg ("parsed but should not:\n%s", yaml);
    if (!wf && (!errors || strcmp (error, errors) != 0))
        fail_msg ("expected:\n%s\ngot:\n%s", errors? errors: "(no error)", error);
    free (error);
    return wf;
}

#define s_parse(yaml)           s_parse_or ((yaml), NULL)
#define s_expect(yaml, errors)  assert_null (s_parse_or ((yaml), (errors)))

static void
test_channels (void **state)
{
    (void) state;
    qn_workflow_t *wf = s_parse (
        "name: w\n"
        "notify:\n"
        "  on: [failed, check_failed, succeeded_with_warnings]\n"
        "  webhook: {url: \"https://ci.example/hook\", secret: \"${{ secrets.HOOK }}\"}\n"
        "  slack: {webhook: \"${{secrets.SLACK}}\"}\n"
        "  email:\n"
        "    to: [ops@example.com, dev@example.com]\n"
        "    smtp: smtps://mail.example:465\n"
        "    from: qanat@example.com\n"
        "    user: qanat\n"
        "    password: \"${{ secrets.SMTP }}\"\n"
        TASKS);
    const qn_wf_notify_t *notify = qn_workflow_notify (wf);
    assert_non_null (notify);
    assert_int_equal (notify->channel_count, 3);
    const qn_notify_channel_t *hook = &notify->channels [0];
    assert_int_equal (hook->kind, QN_NOTIFY_WEBHOOK);
    assert_int_equal (hook->on, QN_NOTIFY_ON_FAILED | QN_NOTIFY_ON_CHECK_FAILED
                                | QN_NOTIFY_ON_WARNINGS);
    assert_string_equal (hook->url, "https://ci.example/hook");
    assert_string_equal (hook->secret, "${{ secrets.HOOK }}");
    assert_int_equal (hook->line, 4);
    assert_int_equal (notify->channels [1].kind, QN_NOTIFY_SLACK);
    assert_string_equal (notify->channels [1].url, "${{secrets.SLACK}}");
    const qn_notify_channel_t *mail = &notify->channels [2];
    assert_int_equal (mail->kind, QN_NOTIFY_EMAIL);
    assert_int_equal (mail->to_count, 2);
    assert_string_equal (mail->to [1], "dev@example.com");
    assert_string_equal (mail->url, "smtps://mail.example:465");
    assert_string_equal (mail->password, "${{ secrets.SMTP }}");
    qn_workflow_destroy (&wf);

    //  A list of blocks, each with its own on:; on: defaults to failed
    wf = s_parse ("name: w\nnotify:\n  - webhook: {url: \"http://a/x\"}\n"
                  "  - on: [succeeded, canceled]\n    slack: {webhook: \"https://hooks.x/T\"}\n"
                  TASKS);
    notify = qn_workflow_notify (wf);
    assert_int_equal (notify->channel_count, 2);
    assert_int_equal (notify->channels [0].on, QN_NOTIFY_ON_FAILED);
    assert_null (notify->channels [0].secret);
    assert_int_equal (notify->channels [1].on, QN_NOTIFY_ON_SUCCEEDED | QN_NOTIFY_ON_CANCELED);
    qn_workflow_destroy (&wf);

    wf = s_parse ("name: w\n" TASKS);
    assert_null (qn_workflow_notify (wf));
    qn_workflow_destroy (&wf);
}

static void
test_errors (void **state)
{
    (void) state;
    s_expect ("name: w\nnotify:\n  on: [failled]\n  webhok: {url: \"http://a\"}\n" TASKS,
              "wf.yaml:3:3: 'notify' names no channel (webhook, slack or email)\n"
              "wf.yaml:3:8: unknown run ending 'failled' in 'on' (did you mean 'failed'?) (use "
              "failed, succeeded_with_warnings, succeeded, canceled, check_failed)\n"
              "wf.yaml:4:3: unknown key 'webhok' in 'notify' (did you mean 'webhook'?)");
    s_expect ("name: w\nnotify:\n  webhook: {url: ftp://x, secret: \"${{ params.X }}\"}\n" TASKS,
              "wf.yaml:3:18: 'url' must start with https:// or http://\n"
              "wf.yaml:3:35: 'secret': only ${{ secrets.NAME }} is allowed here, at "
              "'${{ params.X }}'");
    s_expect ("name: w\nnotify:\n  email: {to: [nobody], smtp: \"smtps://m:465\", "
              "from: a@b, user: u, password: hunter2}\n" TASKS,
              "wf.yaml:3:16: 'nobody' is not an email address\n"
              "wf.yaml:3:78: 'password' must come from a secret: \"${{ secrets.NAME }}\" "
              "(qanat secret set NAME)");
    s_expect ("name: w\nnotify:\n  email: {to: [a@b]}\n" TASKS,
              "wf.yaml:3:10: an email channel needs 'smtp' (smtps://host:465 or smtp://host:587 "
              "with STARTTLS)\n"
              "wf.yaml:3:10: an email channel needs 'from'");
    s_expect ("name: w\nnotify: 3\n" TASKS,
              "wf.yaml:2:9: expected a mapping with 'on' and channels (webhook, slack, email) "
              "for 'notify'");
}

static void
test_default_file (void **state)
{
    (void) state;
    char path [] = "/tmp/test_wf_notify_XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    const char *text = "notify:\n  on: [failed]\n  webhook: {url: \"http://h/x\"}\n";
    assert_int_equal (write (fd, text, strlen (text)), (ssize_t) strlen (text));
    close (fd);
    char *error = NULL;
    qn_wf_notify_t *notify = qn_wf_notify_load (path, &error);
    assert_non_null (notify);
    assert_int_equal (notify->channel_count, 1);
    qn_wf_notify_destroy (&notify);
    assert_null (notify);

    FILE *file = fopen (path, "w");
    fputs ("notify:\n  slack: {}\nextra: 1\n", file);
    fclose (file);
    assert_null (qn_wf_notify_load (path, &error));
    assert_non_null (strstr (error, ":3:1: unknown key 'extra'"));
    assert_non_null (strstr (error, ":2:10: a slack channel needs 'webhook'"));
    free (error);
    unlink (path);
    assert_null (qn_wf_notify_load (path, &error));
    assert_non_null (strstr (error, path));
    free (error);
}

static void
test_references (void **state)
{
    (void) state;
    const char *bad = NULL;
    assert_true (qn_wf_notify_refs_ok ("plain", &bad));
    assert_true (qn_wf_notify_refs_ok ("a${{ secrets.A_1 }}b${{secrets.B}}", &bad));
    assert_false (qn_wf_notify_refs_ok ("x${{ secrets. }}", &bad));
    assert_string_equal (bad, "${{ secrets. }}");
    assert_false (qn_wf_notify_refs_ok ("${{ secrets.A", &bad));
    assert_false (qn_wf_notify_refs_ok ("${{ secrets.A-B }}", &bad));
}

static void
test_signature (void **state)
{
    (void) state;
    char buf [96];
    //  hmac.new(b"whsec-key", b'1700000000.{"run":1}', sha256).hexdigest()
    assert_string_equal (qn_notify_signature ("whsec-key", 1700000000, "{\"run\":1}", buf),
                         "t=1700000000,v1=ef5d3887a48d5f5f495ffcd165e558c1c6c70e0a2b5c035b"
                         "d98eda4a8e2ad15c");
    //  Another time, another body: another signature
    assert_string_not_equal (qn_notify_signature ("whsec-key", 1700000001, "{\"run\":1}", buf)
                             + 16, "ef5d3887a48d5f5f495ffcd165e558c1c6c70e0a2b5c035b"
                             "d98eda4a8e2ad15c");
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_channels),
        cmocka_unit_test (test_errors),
        cmocka_unit_test (test_default_file),
        cmocka_unit_test (test_references),
        cmocka_unit_test (test_signature),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
