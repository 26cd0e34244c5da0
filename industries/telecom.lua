-- Telecom: events from billing and network systems, and subscriber attribute files.
-- Tenant-editable declaration (pure data, no require). The shape is documented at the top of
-- industries/ecommerce.lua and in lua/industries.lua.
return {
    name = "telecom",
    label = "Telecom",
    -- Behaviour analysis: see industries/ecommerce.lua for the shape. Telecom tenants upload events;
    -- without transactions, events with their revenue impact stand in for purchases in RFM.
    behaviour = {
        aggregates = {
            { name = "data_usage_slope_90d", event_type = "data_usage", op = "slope", field = "value", window_days = 90 },
            { name = "data_usage_30d", event_type = "data_usage", op = "count", window_days = 30 },
            { name = "calls_slope_90d", event_type = "call", op = "slope", field = "value", window_days = 90 },
            { name = "complaints_90d", event_type = "complaint", op = "count", window_days = 90 },
            { name = "support_contacts_90d", event_type = "support_contact", op = "count", window_days = 90 },
            { name = "late_payments_180d", event_type = "payment_late", op = "count", window_days = 180 },
            { name = "plan_changes_180d", event_type = "plan_change", op = "count", window_days = 180 },
        },
        score = {
            { feature = "recency_days", center = 14, scale = 30, weight = -2 },
            { feature = "data_usage_slope_90d", center = 0, scale = 5, weight = 2 },
            { feature = "calls_slope_90d", center = 0, scale = 2, weight = 1 },
            { feature = "complaints_90d", center = 0, scale = 3, weight = -2 },
            { feature = "support_contacts_90d", center = 1, scale = 3, weight = -1 },
            { feature = "late_payments_180d", center = 0, scale = 2, weight = -1 },
        },
        trend = { feature = "trend_90", increasing = 0.2, declining = -0.2 },
        signals = {
            { name = "usage_decline", feature = "data_usage_slope_90d", below = -1,
              message = "data usage revenue falling by {abs} per week over 90 days",
              recommendation = "Offer a plan that fits their lower usage before they switch." },
            { name = "communication_shift", feature = "calls_slope_90d", below = -0.5,
              message = "call revenue falling by {abs} per week", recommendation = "Check network quality in their area; offer a call bundle." },
            { name = "billing_complaints", feature = "complaints_90d", above = 1,
              message = "{value} complaints in 90 days", recommendation = "Call them: resolve the billing issue and credit the account." },
            { name = "support_heavy", feature = "support_contacts_90d", above = 3,
              message = "{value} support contacts in 90 days", recommendation = "Escalate to a senior agent; follow up proactively." },
            { name = "payment_delays", feature = "late_payments_180d", above = 0,
              message = "{value} late payments in 180 days", recommendation = "Offer a payment plan or autopay incentive." },
            { name = "inactive", feature = "recency_days", above = 30,
              message = "no activity for {value} days", recommendation = "Reach out with a retention offer." },
        },
    },
    kinds = {
        events = {
            label = "Events",
            description = "One row per event: data usage, calls, complaints, payments, support contacts ...",
            fields = {
                customer_id = { type = "id", required = true,
                    aliases = { "CustomerID", "Customer", "Subscriber ID", "SubscriberID", "Account ID", "MSISDN", "Client ID" } },
                event_date = { type = "date", required = true,
                    aliases = { "EventDate", "Date", "Event Time", "Timestamp", "Occurred At", "Created At" } },
                event_type = { type = "text", required = true,
                    aliases = { "EventType", "Type", "Event", "Activity", "Action", "Category" } },
                revenue_impact = { type = "number",
                    aliases = { "RevenueImpact", "Revenue", "Amount", "Charge", "Value", "Cost" } },
                quantity = { type = "number", aliases = { "Quantity", "Usage", "Duration", "Units", "MB", "Minutes" } },
                channel = { type = "text", aliases = { "Channel", "Source" } },
            },
        },
        customers = {
            label = "Subscriber attributes",
            description = "One row per subscriber: any attribute columns, optionally a churn label (yes/no, 1/0, true/false).",
            fields = {
                customer_id = { type = "id", required = true,
                    aliases = { "CustomerID", "Customer", "Subscriber ID", "SubscriberID", "Account ID", "MSISDN", "Client ID" } },
                email = { type = "text", aliases = { "Email", "E-mail", "Email Address" } },
                name = { type = "text", aliases = { "Name", "Full Name", "Customer Name" } },
                churned = { type = "label", aliases = { "Churn", "Churned", "Is Churned", "Exited", "Attrition", "Left", "Label" } },
            },
            extra_columns = "attributes",
        },
    },
}
