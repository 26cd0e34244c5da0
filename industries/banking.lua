-- Banking: events from core banking (payments, logins, transfers, support contacts), and customer
-- attribute files. Tenant-editable declaration (pure data, no require). The shape is documented at
-- the top of industries/ecommerce.lua and in lua/industries.lua.
return {
    name = "banking",
    label = "Banking",
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
