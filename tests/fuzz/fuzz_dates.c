/* libFuzzer target for src/ingest/types.c: every date format, the number and boolean parsers
 * and column inference on arbitrary bytes. Checks that a parsed date written back as ISO 8601
 * parses to the same instant, that number parsing never yields inf/nan, and that the fast paths
 * (pulse_date_parse_fast, pulse_number_parse_fast) answer exactly as the full parsers. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "ingest/types.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* copy so reading past the end is caught by ASan */
    char *s = malloc(size ? size : 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);

    for (int f = PULSE_DATE_NONE; f <= PULSE_DATE_FORMAT_COUNT; f++) {
        int64_t ep;
        int timed;
        int64_t fast = 0;
        int rc = pulse_date_parse(s, size, (pulse_date_format_t)f, &ep, &timed);
        if (pulse_date_parse_fast(s, size, (pulse_date_format_t)f, &fast) != rc || (rc == 0 && fast != ep))
            abort(); /* the fast path answers as the full parser does */
        if (rc != 0)
            continue;
        if (f == PULSE_DATE_NONE || f == PULSE_DATE_FORMAT_COUNT)
            abort();
        char buf[32];
        int n = pulse_date_format_iso(ep, 1, buf, sizeof(buf));
        if (n < 0)
            continue; /* a zone offset moved it outside 0000-9999 */
        int64_t back;
        if (pulse_date_parse(buf, (size_t)n, PULSE_DATE_ISO_DATETIME, &back, NULL) != 0 || back != ep)
            abort();
        if (!timed) {
            n = pulse_date_format_iso(ep, 0, buf, sizeof(buf));
            if (n < 0 || pulse_date_parse(buf, (size_t)n, PULSE_DATE_ISO, &back, NULL) != 0 || back != ep)
                abort();
        }
    }

    double d;
    for (int dc = 0; dc < 2; dc++) {
        if (pulse_number_parse(s, size, dc, &d) == 0 && !isfinite(d))
            abort();
        double fast = 0, full = 0;
        int rf = pulse_number_parse_fast(s, size, dc, &fast), rs = pulse_number_parse(s, size, dc, &full);
        if (rf != rs || (rs == 0 && memcmp(&fast, &full, sizeof(double)) != 0))
            abort(); /* same answer, bit for bit */
        int64_t v;
        if (pulse_int_parse(s, size, dc, &v) == 0 && pulse_number_parse(s, size, dc, &d) != 0)
            abort(); /* every integer is a number */
    }
    int b;
    (void)pulse_bool_parse(s, size, &b);
    (void)pulse_is_null_like(s, size);

    /* the input as a column: one value per line */
    pulse_column_stats_t st;
    pulse_column_init(&st);
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i == size || s[i] == '\n') {
            pulse_column_observe(&st, s + start, i - start);
            start = i + 1;
        }
    }
    pulse_column_type_t ct;
    for (int dc = 0; dc < 2; dc++) {
        pulse_type_options_t opt = {.decimal_comma = dc};
        pulse_column_decide(&st, &opt, &ct);
        if (ct.values + ct.nulls != st.values + st.nulls || ct.failures > ct.values)
            abort();
    }
    free(s);
    return 0;
}
