-- Narrow predictions (issue 6: scoring 3.5 M customers into PostgreSQL within 15 s).
--
-- 1. The reasons are kept as data and worded when read. predictions.reasons (jsonb, a rendered
--    sentence each: ~850 bytes a customer, 3 GB on 3.5 M) becomes reason_codes: bytea in the layout
--    of src/ml/reason_codes.h (per reason the feature's index in the model, the value the model saw
--    and its effect, plus the values the sentences compare with; ~70 bytes). A bytea rather than
--    parallel smallint[]/real[] arrays: binary COPY takes it as one length and the bytes, where
--    each array is a header plus a length word per element that the server checks and copies one
--    by one, and the arrays would take three times the room. The API renders the codes with the
--    model the row names (model_id), so the answers keep their shape
--    ({feature, value, effect, direction, text}).
--    Existing rows keep their scores and lose their reasons (reason_codes NULL: shown as no
--    reasons): they are derived data, and the next scoring run writes them again.
--
-- 2. The scoring job no longer rewrites customer_analytics with the new churn probability and band
--    (49 s on 3.5 M customers). customer_analytics.churn_probability and churn_band stay: the
--    segmentation fills them (an uploaded churn-score file, or the current prediction carried
--    over) and combines them with RFM. Whoever shows a customer's churn joins predictions on
--    (tenant_id, customer_id) and takes pulse_churn_current(): the fresher of the two, so a new
--    scoring run shows at once without segmenting again, and an uploaded score file shows until
--    the next scoring run.

ALTER TABLE predictions DROP COLUMN reasons;
ALTER TABLE predictions ADD COLUMN reason_codes bytea;

-- The churn value a customer shows: the prediction's (p_value, written at p_at) or the one stored
-- with the analytics (a_value, at a_at), whichever was written last; either one when the other is
-- missing. Call it with both probabilities or both bands. A plain SQL expression, inlined by the
-- planner (no call per row).
CREATE FUNCTION pulse_churn_current(p_value anyelement, p_at timestamptz, a_value anyelement, a_at timestamptz)
    RETURNS anyelement
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN a_value IS NULL OR p_at >= a_at THEN p_value ELSE a_value END $$;
GRANT EXECUTE ON FUNCTION pulse_churn_current(anyelement, timestamptz, anyelement, timestamptz) TO pulse_app;
