-- Telecom: events from billing and network systems, and subscriber attribute files.
-- Tenant-editable declaration (pure data, no require). The shape is documented at the top of
-- industries/ecommerce.lua and in lua/industries.lua.
return {
    name = "telecom",
    label = "Telecom",
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
