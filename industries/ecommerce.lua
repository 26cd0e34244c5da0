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
