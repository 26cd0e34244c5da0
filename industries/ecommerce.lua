-- E-commerce: what a shop uploads. Tenant-editable declaration (pure data, no require; loaded and
-- checked by lua/industries.lua, later in the rules sandbox).
--
-- Shape (the same for every industries/*.lua):
--   return {
--     name = "ecommerce", label = "E-commerce",
--     kinds = {
--       <kind> = {
--         label = "...", description = "...",
--         fields = {
--           <canonical> = { type = "id"|"date"|"number"|"integer"|"text"|"label",
--                           required = true|false, aliases = { "Header Name", ... }, description = "..." },
--         },
--         derived = { <canonical> = { from = { <canonical>, ... }, op = "multiply" } },  -- optional
--         cancellation = { field = <canonical>, prefix = "C" },                        -- optional
--         layouts = { { name = "...", columns = { <canonical>, ... } } },  -- optional: headerless files, by position
--         extra_columns = "attributes" | "ignore",  -- what unmapped columns become (default "ignore")
--       },
--     },
--   }
-- Aliases are matched ignoring case, spaces, underscores, hyphens and dots ("Customer ID" =
-- "customer_id" = "CustomerID"); the canonical name is always an alias of itself. A required field
-- with a `derived` rule is satisfied when all of its `from` fields are mapped.
return {
    name = "ecommerce",
    label = "E-commerce",
    -- Behaviour analysis (POST /api/v1/behavior/organizations/{id}/analyze-behaviors). Evaluated in C
    -- for every customer from the features (see the README's feature list) and these aggregates over
    -- uploaded events; no Lua runs per customer.
    --   aggregates: { name, event_type, op = "count"|"sum"|"avg"|"slope", field = "value"|"quantity",
    --                 window_days } -- events in the window before the as-of day (slope: per week)
    --   score: terms { feature, center, scale, weight }: 50 + 50 * sum(weight * clamp((x - center) /
    --          scale, -1, 1)) / sum(|weight|), clamped to 0-100 (a missing value contributes 0)
    --   trend: { feature, increasing = x, declining = y }: above x increasing, below y declining
    --   signals: { name, feature, above = x | below = y, message, recommendation }: "{value}" and
    --            "{threshold}" in message are replaced by the figures
    behaviour = {
        aggregates = {
            { name = "cart_abandoned_30d", event_type = "cart_abandoned", op = "count", window_days = 30 },
            { name = "product_views_30d", event_type = "product_view", op = "count", window_days = 30 },
        },
        score = {
            { feature = "recency_days", center = 60, scale = 90, weight = -3 },
            { feature = "trend_90", center = 0, scale = 1, weight = 2 },
            { feature = "frequency", center = 3, scale = 5, weight = 1 },
            { feature = "days_overdue", center = 0, scale = 60, weight = -2 },
            { feature = "return_rate", center = 0.1, scale = 0.3, weight = -1 },
        },
        trend = { feature = "trend_90", increasing = 0.25, declining = -0.25 },
        signals = {
            { name = "overdue", feature = "days_overdue", above = 30,
              message = "no purchase for {value} days longer than their usual rhythm",
              recommendation = "Send a reminder with the products they usually buy." },
            { name = "purchase_frequency_drop", feature = "trend_90", below = -0.5,
              message = "purchase days in the last 90 days fell by {abs} against the 90 days before",
              recommendation = "Win back with a personalised offer before they lapse." },
            { name = "high_return_rate", feature = "return_rate", above = 0.3,
              message = "returns {value} of purchases", recommendation = "Ask about fit and quality; suggest better-matched products." },
            { name = "discount_dependency", feature = "discount_share", above = 0.6,
              message = "{value} of purchases made with a discount", recommendation = "Shift to loyalty perks instead of deeper discounts." },
            { name = "cart_abandonment", feature = "cart_abandoned_30d", above = 2,
              message = "{value} abandoned carts in 30 days", recommendation = "Send a cart reminder, maybe with free shipping." },
        },
    },
    kinds = {
        transactions = {
            label = "Transactions",
            description = "One row per purchase (or invoice line): who bought, when, for how much.",
            fields = {
                customer_id = { type = "id", required = true,
                    aliases = { "CustomerID", "Customer", "Client ID", "ClientID", "Cust ID", "User ID", "Buyer ID", "Member ID" } },
                transaction_date = { type = "date", required = true,
                    aliases = { "TransactionDate", "InvoiceDate", "Invoice Date", "Order Date", "Purchase Date", "Date",
                        "Transaction Time", "Timestamp", "Created At" } },
                amount = { type = "number", required = true,
                    aliases = { "TransactionAmount", "Amount", "Dollar Value", "Total", "Order Total", "Revenue", "Value",
                        "Sales", "Price Total", "Net Amount" } },
                quantity = { type = "integer",
                    aliases = { "Quantity", "Qty", "Number Of CDs", "Units", "Items", "Item Count" } },
                unit_price = { type = "number", aliases = { "UnitPrice", "Price", "Item Price", "Unit Cost" } },
                product_category = { type = "text", aliases = { "ProductCategory", "Category", "Product Type" } },
                product = { type = "text", aliases = { "StockCode", "Product", "SKU", "Product ID", "Item" } },
                description = { type = "text", aliases = { "Description", "Product Name", "Item Name" } },
                invoice_no = { type = "text", aliases = { "InvoiceNo", "Invoice ID", "Invoice", "Invoice Number", "Order ID",
                    "Order Number", "Transaction ID" } },
                country = { type = "text", aliases = { "Country", "Region" } },
            },
            derived = {
                amount = { from = { "quantity", "unit_price" }, op = "multiply" },
            },
            cancellation = { field = "invoice_no", prefix = "C" },
            layouts = {
                -- CDNOW: "customer_id date number_of_cds dollar_value", whitespace-separated, no header
                { name = "cdnow", columns = { "customer_id", "transaction_date", "quantity", "amount" } },
            },
        },
        customers = {
            label = "Customer attributes",
            description = "One row per customer: any attribute columns, optionally a churn label (yes/no, 1/0, true/false).",
            fields = {
                customer_id = { type = "id", required = true,
                    aliases = { "CustomerID", "Customer", "Client ID", "ClientID", "Cust ID", "User ID", "Member ID" } },
                email = { type = "text", aliases = { "Email", "E-mail", "Email Address", "Mail" } },
                name = { type = "text", aliases = { "Name", "Full Name", "Customer Name" } },
                churned = { type = "label", aliases = { "Churn", "Churned", "Is Churned", "Exited", "Attrition", "Left", "Label" } },
            },
            extra_columns = "attributes",
        },
    },
}
