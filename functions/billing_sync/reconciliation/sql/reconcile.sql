-- Per-document reconciliation of one period: billing documents against ERP documents and lineage.
--
-- Dialect: DuckDB; athena.py transpiles this same text to Trino (Athena) with sqlglot.
-- Parameters: $period ('YYYY-MM'), $entity (a legal entity, or NULL for all).
-- Tables: billing_documents, billing_document_lines, erp_documents, erp_document_lines, lineage (extracts.py).
--
-- A document belongs to the period of its billing document, or, with none, to the period of its ERP
-- document; billing and ERP documents pair by the deterministic ERP external id, whatever period each
-- side booked it in. Each document gets exactly one class, first that applies:
--   missing_in_erp         billing document, no ERP document (includes one seen only in the list API)
--   missing_in_billing     ERP document (invoice, payment, credit memo, refund), no billing document
--   duplicate_in_erp       two or more ERP documents for one billing document
--   amount_mismatch        currency, total or any line differs (transaction currency)
--   status_mismatch        paid in billing but open in the ERP (no payment covers it), or void in billing only
--   posted_not_in_lineage  the ERP document's source event has no POSTED lineage recording that document
--   matched                none of the above
--
-- Output: one row per document (level 'document', every class including matched) and, for
-- amount_mismatch, one more row per differing line (level 'line'). Columns:
--   level, class, source, document_id, external_id, kind, legal_entity, period, currency, line_id,
--   billing_amount, erp_amount, difference (billing - ERP, minor units; NULL across currencies),
--   billing_status, erp_status, erp_currency, erp_count, erp_document_ids (sorted list), event_id (the
--   event to trace: the billing event, else the ERP document's source event), in_events, in_list_api,
--   lineage_status, detail.
WITH
billing AS (
    SELECT *
    FROM billing_documents
    WHERE $entity IS NULL OR legal_entity = $entity
),
billing_in_period AS (
    SELECT * FROM billing WHERE period = $period
),
erp AS (
    SELECT *
    FROM erp_documents
    WHERE kind IN ('invoice', 'payment', 'credit_memo', 'refund')
      AND ($entity IS NULL OR legal_entity = $entity)
),
erp_in_scope AS (
    SELECT *
    FROM erp
    WHERE period = $period
       OR external_id IN (SELECT external_id FROM billing_in_period)
),
erp_by_document AS (
    SELECT
        external_id,
        COUNT(*) AS erp_count,
        MIN(erp_document_id) AS erp_document_id,
        LIST(erp_document_id ORDER BY erp_document_id) AS erp_document_ids,
        MIN(kind) AS kind,
        MIN(legal_entity) AS legal_entity,
        MIN(period) AS period,
        MIN(currency) AS currency,
        COUNT(DISTINCT currency) AS currencies,
        SUM(total) AS total,
        MIN(status) AS status,
        MIN(source_event_id) AS source_event_id
    FROM erp_in_scope
    GROUP BY external_id
),
billing_anywhere AS (
    SELECT DISTINCT external_id FROM billing
),
pairs AS (
    SELECT
        b.source,
        b.document_id,
        COALESCE(b.external_id, e.external_id) AS external_id,
        COALESCE(b.kind, e.kind) AS kind,
        COALESCE(b.legal_entity, e.legal_entity) AS legal_entity,
        COALESCE(b.period, e.period) AS period,
        b.currency AS billing_currency,
        e.currency AS erp_currency,
        e.currencies,
        b.total AS billing_total,
        e.total AS erp_total,
        b.status AS billing_status,
        e.status AS erp_status,
        e.erp_count,
        e.erp_document_id,
        e.erp_document_ids,
        e.source_event_id,
        b.event_ids,
        b.in_events,
        b.in_list_api,
        b.external_id IS NOT NULL AS has_billing,
        e.external_id IS NOT NULL AS has_erp
    FROM billing_in_period AS b
    FULL OUTER JOIN erp_by_document AS e ON b.external_id = e.external_id
    LEFT JOIN billing_anywhere AS elsewhere ON b.external_id IS NULL AND elsewhere.external_id = e.external_id
    WHERE b.external_id IS NOT NULL OR elsewhere.external_id IS NULL
),
comparable AS (
    SELECT p.external_id, p.erp_document_id
    FROM pairs AS p
    WHERE p.has_billing AND p.has_erp AND p.erp_count = 1
),
-- line ids are unique within a document (extract contract), so lines pair one to one
billing_lines AS (
    SELECT l.external_id, l.line_id, l.amount
    FROM billing_document_lines AS l
    JOIN comparable AS c ON c.external_id = l.external_id
    WHERE l.period = $period
),
erp_lines AS (
    SELECT c.external_id, l.line_id, l.amount
    FROM erp_document_lines AS l
    JOIN comparable AS c ON c.erp_document_id = l.erp_document_id
),
line_differences AS (
    SELECT
        COALESCE(bl.external_id, el.external_id) AS external_id,
        COALESCE(bl.line_id, el.line_id) AS line_id,
        bl.amount AS billing_amount,
        el.amount AS erp_amount,
        COALESCE(bl.amount, 0) - COALESCE(el.amount, 0) AS difference
    FROM billing_lines AS bl
    FULL OUTER JOIN erp_lines AS el ON bl.external_id = el.external_id AND bl.line_id = el.line_id
    WHERE bl.amount IS NULL OR el.amount IS NULL OR bl.amount <> el.amount
),
lines_differing AS (
    SELECT external_id, COUNT(*) AS differing_lines
    FROM line_differences
    GROUP BY external_id
),
classified AS (
    SELECT
        p.*,
        lg.status AS lineage_status,
        COALESCE(ld.differing_lines, 0) AS differing_lines,
        CASE
            WHEN NOT p.has_erp THEN 'missing_in_erp'
            WHEN NOT p.has_billing THEN 'missing_in_billing'
            WHEN p.erp_count > 1 THEN 'duplicate_in_erp'
            WHEN p.currencies > 1
                OR p.billing_currency <> p.erp_currency
                OR p.billing_total <> p.erp_total
                OR COALESCE(ld.differing_lines, 0) > 0 THEN 'amount_mismatch'
            WHEN (p.billing_status = 'paid' AND p.erp_status = 'open')
                OR (p.billing_status = 'void' AND p.erp_status <> 'void') THEN 'status_mismatch'
            WHEN lg.event_id IS NULL
                OR lg.status <> 'POSTED'
                OR NOT COALESCE(LIST_CONTAINS(lg.erp_document_ids, p.erp_document_id), FALSE) THEN 'posted_not_in_lineage'
            ELSE 'matched'
        END AS class
    FROM pairs AS p
    LEFT JOIN lineage AS lg ON lg.event_id = p.source_event_id
    LEFT JOIN lines_differing AS ld ON ld.external_id = p.external_id
),
documents AS (
    SELECT
        'document' AS level,
        c.class,
        c.source,
        c.document_id,
        c.external_id,
        c.kind,
        c.legal_entity,
        c.period,
        COALESCE(c.billing_currency, c.erp_currency) AS currency,
        CAST(NULL AS VARCHAR) AS line_id,
        c.billing_total AS billing_amount,
        c.erp_total AS erp_amount,
        CASE
            WHEN c.billing_currency <> c.erp_currency OR c.currencies > 1 THEN NULL
            ELSE COALESCE(c.billing_total, 0) - COALESCE(c.erp_total, 0)
        END AS difference,
        c.billing_status,
        c.erp_status,
        c.erp_currency,
        COALESCE(c.erp_count, 0) AS erp_count,
        c.erp_document_ids,
        -- guarded: Trino fails on an out-of-range subscript where DuckDB gives NULL
        COALESCE(CASE WHEN ARRAY_LENGTH(c.event_ids) > 0 THEN c.event_ids[1] END, c.source_event_id) AS event_id,
        c.in_events,
        c.in_list_api,
        c.lineage_status,
        CASE c.class
            WHEN 'missing_in_erp' THEN
                CASE WHEN c.in_events THEN 'no ERP document' ELSE 'no ERP document; never delivered as an event' END
            WHEN 'missing_in_billing' THEN 'no billing document for this external id'
            WHEN 'duplicate_in_erp' THEN 'ERP holds ' || CAST(c.erp_count AS VARCHAR) || ' documents'
            WHEN 'amount_mismatch' THEN
                CASE
                    WHEN c.billing_currency <> c.erp_currency OR c.currencies > 1
                        THEN 'currency ' || c.billing_currency || ' in billing, ' || c.erp_currency || ' in ERP'
                    ELSE CAST(c.differing_lines AS VARCHAR) || ' line(s) differ'
                END
            WHEN 'status_mismatch' THEN c.billing_status || ' in billing, ' || c.erp_status || ' in ERP'
            WHEN 'posted_not_in_lineage' THEN
                CASE
                    WHEN c.lineage_status IS NULL THEN 'no lineage for event ' || c.source_event_id
                    ELSE 'lineage ' || c.lineage_status || ' does not record ' || c.erp_document_id
                END
            ELSE ''
        END AS detail
    FROM classified AS c
),
line_rows AS (
    SELECT
        'line' AS level,
        d.class,
        d.source,
        d.document_id,
        d.external_id,
        d.kind,
        d.legal_entity,
        d.period,
        d.currency,
        ld.line_id,
        ld.billing_amount,
        ld.erp_amount,
        ld.difference,
        d.billing_status,
        d.erp_status,
        d.erp_currency,
        d.erp_count,
        d.erp_document_ids,
        d.event_id,
        d.in_events,
        d.in_list_api,
        d.lineage_status,
        CASE
            WHEN ld.erp_amount IS NULL THEN 'line missing in ERP'
            WHEN ld.billing_amount IS NULL THEN 'line missing in billing'
            ELSE 'line amount differs'
        END AS detail
    FROM documents AS d
    JOIN line_differences AS ld ON ld.external_id = d.external_id
    WHERE d.class = 'amount_mismatch'
)
SELECT * FROM documents
UNION ALL
SELECT * FROM line_rows
