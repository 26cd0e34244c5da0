-- Banking: events from core banking (payments, logins, transfers, support contacts), and customer
-- attribute files. Tenant-editable declaration (pure data, no require). The shape is documented at
-- the top of industries/ecommerce.lua and in lua/industries.lua.
return {
    name = "banking",
    label = "Banking",
    -- Behaviour analysis: see industries/ecommerce.lua for the shape. Banking tenants upload events;
    -- without transactions, events with their revenue impact stand in for purchases in RFM.
    behaviour = {
        aggregates = {
            { name = "logins_30d", event_type = "login", op = "count", window_days = 30 },
            { name = "logins_slope_90d", event_type = "login", op = "slope", field = "value", window_days = 90 },
            { name = "card_payments_30d", event_type = "card_payment", op = "count", window_days = 30 },
            { name = "transfers_30d", event_type = "transfer", op = "count", window_days = 30 },
            { name = "withdrawals_90d", event_type = "withdrawal", op = "sum", field = "value", window_days = 90 },
            { name = "products_opened_365d", event_type = "product_open", op = "count", window_days = 365 },
            { name = "products_closed_180d", event_type = "product_close", op = "count", window_days = 180 },
            { name = "support_contacts_90d", event_type = "support_contact", op = "count", window_days = 90 },
        },
        score = {
            { feature = "recency_days", center = 14, scale = 30, weight = -2 },
            { feature = "logins_30d", center = 8, scale = 8, weight = 2 },
            { feature = "card_payments_30d", center = 5, scale = 10, weight = 1 },
            { feature = "products_closed_180d", center = 0, scale = 1, weight = -2 },
            { feature = "support_contacts_90d", center = 1, scale = 3, weight = -1 },
        },
        trend = { feature = "trend_90", increasing = 0.2, declining = -0.2 },
        signals = {
            { name = "login_decline", feature = "logins_30d", below = 2,
              message = "only {value} logins in 30 days", recommendation = "Re-engage with app features they have not tried." },
            { name = "product_closed", feature = "products_closed_180d", above = 0,
              message = "{value} products closed in 180 days", recommendation = "Call them: find out why and offer an alternative product." },
            { name = "withdrawing_funds", feature = "withdrawals_90d", below = -1000,
              message = "withdrawals of {value} in 90 days", recommendation = "Relationship manager contact; offer a better savings rate." },
            { name = "support_heavy", feature = "support_contacts_90d", above = 3,
              message = "{value} support contacts in 90 days", recommendation = "Resolve open issues; follow up personally." },
            { name = "inactive", feature = "recency_days", above = 30,
              message = "no activity for {value} days", recommendation = "Reach out with a reactivation offer." },
        },
    },
    kinds = {
        events = {
            label = "Events",
            description = "One row per event: payments, logins, transfers, card use, support contacts ...",
            fields = {
                customer_id = { type = "id", required = true,
                    aliases = { "CustomerID", "Customer", "Client ID", "ClientID", "Account ID", "AccountID", "Customer Number" } },
                event_date = { type = "date", required = true,
                    aliases = { "EventDate", "Date", "Transaction Date", "Booking Date", "Value Date", "Event Time",
                        "Timestamp", "Occurred At" } },
                event_type = { type = "text", required = true,
                    aliases = { "EventType", "Type", "Event", "Activity", "Transaction Type", "Action" } },
                revenue_impact = { type = "number",
                    aliases = { "RevenueImpact", "Revenue", "Amount", "Fee", "Value" } },
                balance = { type = "number", aliases = { "Balance", "Account Balance" } },
                channel = { type = "text", aliases = { "Channel", "Source" } },
            },
        },
        customers = {
            label = "Customer attributes",
            description = "One row per customer: any attribute columns, optionally a churn label (yes/no, 1/0, true/false).",
            fields = {
                customer_id = { type = "id", required = true,
                    aliases = { "CustomerID", "Customer", "Client ID", "ClientID", "Account ID", "Customer Number" } },
                email = { type = "text", aliases = { "Email", "E-mail", "Email Address" } },
                name = { type = "text", aliases = { "Name", "Full Name", "Surname", "Customer Name" } },
                churned = { type = "label", aliases = { "Churn", "Churned", "Is Churned", "Exited", "Attrition", "Attrition Flag", "Left", "Label" } },
            },
            extra_columns = "attributes",
        },
    },
}
