-- Balancing controls of one period, per legal entity and currency.
--
-- Dialect: DuckDB; athena.py transpiles this same text to Trino (Athena) with sqlglot.
-- Parameters: $period ('YYYY-MM'), $entity (a legal entity, or NULL for all).
-- Tables: billing_documents, erp_documents, balance_transactions, deferred_revenue (extracts.py).
--
-- Output: one row per control, entity, currency and item. Columns:
--   control, legal_entity, currency, period, item (aging bucket or roll-forward side; '' otherwise),
--   left_label, left_amount, right_label, right_amount, variance (= left - right), all in minor units.
-- Controls (left vs right):
--   billed_vs_erp_invoices          billing invoices issued in the period vs ERP invoices (totals, voided included)
--   cash_settled_vs_erp_payments    succeeded billing payments vs ERP payments
--   credit_notes_vs_erp_credit_memos  billing credit notes vs ERP credit memos
--   refunds_vs_erp_refunds          succeeded billing refunds vs ERP refunds
--   stripe_clearing_vs_payouts      net of the balance transactions the period's payouts settled (what Stripe
--                                   clearing released) vs those payouts (Stripe's payout amounts)
--   payouts_vs_erp_payouts          Stripe payouts vs ERP payout documents
--   deferred_revenue_rollforward    per side (item 'billing' / 'erp'): opening + billed - recognised - credited
--                                   vs the closing balance that side reports
--   deferred_revenue_closing        billing closing balance vs ERP closing balance
--   receivables_aging               open receivables (amount remaining of open invoices issued up to the period)
--                                   per bucket of days past due at the period's last day: current (not due or
--                                   no due date), 1-30, 31-60, 61-90, 90+; billing vs ERP
WITH
labels AS (
    SELECT *
    FROM (
        VALUES
            ('billed_vs_erp_invoices', 'billed', 'erp_invoices'),
            ('cash_settled_vs_erp_payments', 'cash_settled', 'erp_payments'),
            ('credit_notes_vs_erp_credit_memos', 'credit_notes', 'erp_credit_memos'),
            ('refunds_vs_erp_refunds', 'refunds', 'erp_refunds'),
            ('stripe_clearing_vs_payouts', 'clearing_settled', 'payouts'),
            ('payouts_vs_erp_payouts', 'stripe_payouts', 'erp_payouts'),
            ('deferred_revenue_rollforward', 'opening_billed_recognised_credited', 'closing'),
            ('deferred_revenue_closing', 'billing_closing', 'erp_closing'),
            ('receivables_aging', 'billing_open', 'erp_open')
    ) AS t (control, left_label, right_label)
),
as_of AS (
    SELECT LAST_DAY(CAST($period || '-01' AS DATE)) AS day
),
billing AS (
    SELECT * FROM billing_documents WHERE $entity IS NULL OR legal_entity = $entity
),
erp AS (
    SELECT * FROM erp_documents WHERE $entity IS NULL OR legal_entity = $entity
),
payouts AS (
    SELECT payout_id, legal_entity, currency, net
    FROM balance_transactions
    WHERE type = 'payout' AND period = $period AND ($entity IS NULL OR legal_entity = $entity)
),
aging_billing AS (
    SELECT b.legal_entity, b.currency, b.amount_remaining, DATE_DIFF('day', b.due_date, a.day) AS days_past_due
    FROM billing AS b
    CROSS JOIN as_of AS a
    WHERE b.kind = 'invoice' AND b.status = 'open' AND b.period <= $period AND b.amount_remaining <> 0
),
aging_erp AS (
    SELECT e.legal_entity, e.currency, e.amount_remaining, DATE_DIFF('day', e.due_date, a.day) AS days_past_due
    FROM erp AS e
    CROSS JOIN as_of AS a
    WHERE e.kind = 'invoice' AND e.status = 'open' AND e.period <= $period AND e.amount_remaining <> 0
),
contributions AS (
    SELECT
        CASE kind
            WHEN 'invoice' THEN 'billed_vs_erp_invoices'
            WHEN 'payment' THEN 'cash_settled_vs_erp_payments'
            WHEN 'credit_note' THEN 'credit_notes_vs_erp_credit_memos'
            ELSE 'refunds_vs_erp_refunds'
        END AS control,
        legal_entity, currency, '' AS item, total AS left_amount, CAST(0 AS BIGINT) AS right_amount
    FROM billing
    WHERE period = $period AND (kind IN ('invoice', 'credit_note') OR status = 'succeeded')
    UNION ALL
    SELECT
        CASE kind
            WHEN 'invoice' THEN 'billed_vs_erp_invoices'
            WHEN 'payment' THEN 'cash_settled_vs_erp_payments'
            WHEN 'credit_memo' THEN 'credit_notes_vs_erp_credit_memos'
            WHEN 'refund' THEN 'refunds_vs_erp_refunds'
            ELSE 'payouts_vs_erp_payouts'
        END,
        legal_entity, currency, '', CAST(0 AS BIGINT), total
    FROM erp
    WHERE period = $period AND kind IN ('invoice', 'payment', 'credit_memo', 'refund', 'payout')
    UNION ALL
    SELECT 'stripe_clearing_vs_payouts', t.legal_entity, t.currency, '', t.net, CAST(0 AS BIGINT)
    FROM balance_transactions AS t
    JOIN payouts AS p ON p.payout_id = t.payout_id AND p.legal_entity = t.legal_entity
    WHERE t.type <> 'payout'
    UNION ALL
    SELECT 'stripe_clearing_vs_payouts', legal_entity, currency, '', CAST(0 AS BIGINT), -net
    FROM payouts
    UNION ALL
    SELECT 'payouts_vs_erp_payouts', legal_entity, currency, '', -net, CAST(0 AS BIGINT)
    FROM payouts
    UNION ALL
    SELECT
        'deferred_revenue_rollforward', legal_entity, currency, side,
        opening + billed - recognised - credited, closing
    FROM deferred_revenue
    WHERE period = $period AND ($entity IS NULL OR legal_entity = $entity)
    UNION ALL
    SELECT
        'deferred_revenue_closing', legal_entity, currency, '',
        CASE WHEN side = 'billing' THEN closing ELSE CAST(0 AS BIGINT) END,
        CASE WHEN side = 'erp' THEN closing ELSE CAST(0 AS BIGINT) END
    FROM deferred_revenue
    WHERE period = $period AND ($entity IS NULL OR legal_entity = $entity)
    UNION ALL
    SELECT
        'receivables_aging', legal_entity, currency,
        CASE
            WHEN days_past_due IS NULL OR days_past_due <= 0 THEN 'current'
            WHEN days_past_due <= 30 THEN '1-30'
            WHEN days_past_due <= 60 THEN '31-60'
            WHEN days_past_due <= 90 THEN '61-90'
            ELSE '90+'
        END,
        amount_remaining, CAST(0 AS BIGINT)
    FROM aging_billing
    UNION ALL
    SELECT
        'receivables_aging', legal_entity, currency,
        CASE
            WHEN days_past_due IS NULL OR days_past_due <= 0 THEN 'current'
            WHEN days_past_due <= 30 THEN '1-30'
            WHEN days_past_due <= 60 THEN '31-60'
            WHEN days_past_due <= 90 THEN '61-90'
            ELSE '90+'
        END,
        CAST(0 AS BIGINT), amount_remaining
    FROM aging_erp
),
totals AS (
    SELECT control, legal_entity, currency, item, SUM(left_amount) AS left_amount, SUM(right_amount) AS right_amount
    FROM contributions
    GROUP BY control, legal_entity, currency, item
)
SELECT
    t.control,
    t.legal_entity,
    t.currency,
    $period AS period,
    t.item,
    l.left_label,
    t.left_amount,
    l.right_label,
    t.right_amount,
    t.left_amount - t.right_amount AS variance
FROM totals AS t
JOIN labels AS l ON l.control = t.control
ORDER BY t.control, t.legal_entity, t.currency, t.item
